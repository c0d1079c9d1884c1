"""A file's audio as the decoder or the demuxer gives it, before any downmix or resampling: for
checks that two files carry the same audio (a file re-tagged against its original).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import soundfile as sf

from datamodules.decoding.files import AudioError, check_path, one_line
from datamodules.decoding.pyav_reader import NotOpened, audio_stream, open_av
from datamodules.decoding.reader import audio_info


def decoded_samples(path: str | os.PathLike, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
    """The raw decoded samples of ``path``, block by block: every channel, the file's own rate,
    no downmix, no resampling, no clamping; by the decoder :func:`audio_info` picks.

    For checks that two files carry the same audio (a file re-tagged against its original): the
    same bitstream decodes to the same blocks, bit for bit, lossy codecs included.

    Yields:
        soundfile: (frames, channels) arrays in a type that holds the decoder's values exactly
        (int32 for 32-bit PCM, float64 for double, else float32); PyAV: each decoded frame's
        array as FFmpeg returns it (its own sample format).

    Raises:
        AudioError: as :func:`audio_info`, or when decoding fails.
    """
    path = check_path(path)
    info = audio_info(path)
    try:
        if info.backend == "soundfile":
            dtype = {"PCM_32": "int32", "DOUBLE": "float64"}.get(info.codec, "float32")
            with sf.SoundFile(str(path)) as f:
                yield from f.blocks(blocksize=block_frames, dtype=dtype, always_2d=True)
            return
        container = open_av(path)
        with container:
            stream = audio_stream(container, path)
            for frame in container.decode(stream):
                yield frame.to_ndarray()
    except AudioError:
        raise
    except Exception as err:  # NotOpened, LibsndfileError, av.error.FFmpegError, ...
        raise AudioError(f"{path}: cannot decode ({one_line(err)})") from err


def encoded_packets(path: str | os.PathLike) -> Iterator[bytes]:
    """The first audio stream of ``path`` as FFmpeg demuxes it, undecoded: first the codec, rate,
    channels and the decoder's setup data (``extradata``: Vorbis/Opus headers, FLAC STREAMINFO,
    AAC config), then every packet with its timestamps. Two files with the same items decode to
    the same samples; demuxing costs a fraction of decoding (a few ms for a 30 s song).

    Raises:
        AudioError: FFmpeg cannot open the file or finds no audio stream.
    """
    path = check_path(path)
    try:
        container = open_av(path)
    except NotOpened as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    try:
        with container:
            stream = audio_stream(container, path)
            codec = stream.codec_context
            yield f"{codec.name}:{codec.sample_rate}:{codec.channels}:{stream.time_base}".encode()
            yield bytes(codec.extradata or b"")
            for packet in container.demux(stream):
                if packet.size:
                    yield f"{packet.pts}:{packet.dts}:{packet.duration}".encode()
                    yield bytes(packet)
    except AudioError:
        raise
    except Exception as err:  # av.error.FFmpegError
        raise AudioError(f"{path}: cannot demux ({one_line(err)})") from err
