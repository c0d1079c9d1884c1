"""One line, one write: what a decoder thread prints to the same stderr cannot land inside it."""

import io

from lightning_module.console import write_line


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_a_line_is_one_write_with_its_newline():
    stream = RecordingStream()
    write_line("skipped: random.mp3: not a readable audio file", stream)
    write_line("skipped: b.wav: audio is silent", stream)
    assert stream.writes == [
        "skipped: random.mp3: not a readable audio file\n",
        "skipped: b.wav: audio is silent\n",
    ]
