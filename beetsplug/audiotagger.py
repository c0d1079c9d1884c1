"""audiotagger for beets: genre, mood, BPM, key and audio features from the audio itself.

Enable it with ``plugins: audiotagger`` in beets' config.yaml (docs/beets.md):

* ``beet audiotag [QUERY]`` tags the matching items with the shipped model (or
  ``audiotagger.model``): beets' own ``genres``, ``mood``, ``bpm`` and ``initial_key`` where the
  user has not set them (``--force`` replaces them), every feature, the genre tags and the model
  id as ``audiotagger_*`` attributes; files are written when beets' ``import.write`` is on.
* ``auto: yes`` tags every import the same way.
* ``beet audiosimilar QUERY -n 10`` lists the items that sound most like each matched item.

This module is the beets glue only; the work lives in :mod:`lightning_module.beets_plugin`,
imported when a command runs, so ``beet`` starts as fast with the plugin as without it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from beets import config, ui
from beets.plugins import BeetsPlugin

from lightning_module.beets_plugin.fields import (
    GENRE_TAGS_THRESHOLD,
    MIN_PROBABILITY,
    MODEL_FIELD,
    STANDARD_FIELDS,
    BeetsOptions,
)
from lightning_module.beets_plugin.media import ITEM_TYPES, add_own_tags, register_media_fields

#: beets' own fields we may fill, as beets 2 names them (shown when they change).
STANDARD_BEETS_FIELDS = ("genres", "genre", "mood", "bpm", "initial_key")


class AudioTaggerPlugin(BeetsPlugin):
    """The ``audiotagger`` beets plugin."""

    item_types = ITEM_TYPES

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.config.add(
            {
                "model": "",  # empty: the shipped model
                "auto": False,
                "force": False,
                "quiet": False,
                "fields": list(STANDARD_FIELDS),
                "min_probability": MIN_PROBABILITY,
                "genre_source": "top",
                "genre_tags_threshold": GENRE_TAGS_THRESHOLD,
                "key_notation": "standard",
                "batch_size": 16,
                "device": "cpu",
                "index": "",  # empty: <beets config dir>/audiotagger/similarity.npz
            }
        )
        register_media_fields(self)
        self.register_listener("write", add_own_tags)
        self._model: Any = None
        #: ids of items the import stage changed, to write once their files are in place
        self._imported: set[int] = set()
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
            self.register_listener("import_task_files", self.write_imported)

    # -- configuration ---------------------------------------------------------------------------
    def options(self) -> BeetsOptions:
        try:
            return BeetsOptions(
                fields=tuple(self.config["fields"].as_str_seq()),
                min_probability=self.config["min_probability"].as_number(),
                genre_source=self.config["genre_source"].as_str(),
                genre_tags_threshold=self.config["genre_tags_threshold"].as_number(),
                key_notation=self.config["key_notation"].as_str(),
            )
        except ValueError as err:
            raise ui.UserError(str(err)) from err

    def model(self) -> Any:
        """The configured model, made once per beets process (loaded when first needed)."""
        if self._model is None:
            from lightning_module.beets_plugin.model import ModelRef

            try:
                self._model = ModelRef(
                    self.config["model"].as_str() or None,
                    batch_size=self.config["batch_size"].get(int),
                    device=self.config["device"].as_str(),
                )
            except (OSError, ValueError) as err:
                raise ui.UserError(str(err).splitlines()[0]) from err
        return self._model

    @staticmethod
    def _show(item: Any) -> None:
        """Print the changes of beets' own fields and the model (the rest: ``beet info``)."""
        ui.show_model_changes(item, fields=[*STANDARD_BEETS_FIELDS, MODEL_FIELD])

    def _warn(self, line: str) -> None:
        self._log.warning("{}", line)

    # -- commands --------------------------------------------------------------------------------
    def commands(self) -> list[ui.Subcommand]:
        tag = ui.Subcommand(
            "audiotag", help="tag items with genre, mood, BPM, key and audio features"
        )
        tag.parser.add_option(
            "-f",
            "--force",
            action="store_true",
            default=None,
            help="re-tag items this model already tagged and replace values the user set",
        )
        tag.parser.add_option(
            "-q", "--quiet", action="store_true", default=None, help="do not show changes"
        )
        tag.parser.add_option(
            "-W", "--nowrite", action="store_true", help="do not write files (import.write: no)"
        )
        tag.func = self.tag_command
        similar = ui.Subcommand("audiosimilar", help="list items that sound like the matched ones")
        similar.parser.add_option(
            "-n", "--count", type="int", default=10, help="how many (default: %default)"
        )
        similar.parser.add_format_option(target="item")
        similar.func = self.similar_command
        return [tag, similar]

    def tag_command(self, lib: Any, opts: Any, args: list[str]) -> None:
        from lightning_module.beets_plugin.model import ModelLoadError
        from lightning_module.beets_plugin.tagging import tag_items

        options = self.options()
        model = self.model()
        quiet = opts.quiet if opts.quiet is not None else self.config["quiet"].get(bool)
        try:
            report = tag_items(
                lib.items(args),
                model,
                options,
                force=opts.force if opts.force is not None else self.config["force"].get(bool),
                write=ui.should_write(False if opts.nowrite else None),
                show=None if quiet else self._show,
                warn=self._warn,
            )
        except ModelLoadError as err:
            raise ui.UserError(str(err)) from err
        ui.print_(report.line(model.label if model.loaded else model.base_id))

    def imported(self, session: Any, task: Any) -> None:
        """The import stage (``auto: yes``): tag the imported items (stored; the files are
        written by :meth:`write_imported`, after beets copied or moved them)."""
        from lightning_module.beets_plugin.model import ModelLoadError
        from lightning_module.beets_plugin.tagging import tag_items

        try:
            report = tag_items(
                task.imported_items(),
                self.model(),
                self.options(),
                force=self.config["force"].get(bool),
                warn=self._warn,
            )
        except ModelLoadError as err:
            raise ui.UserError(str(err)) from err
        self._imported.update(item.id for item in report.changed_items)
        if report.changed or report.skipped:
            self._log.info("{}", report.line(self.model().base_id))

    def write_imported(self, session: Any, task: Any) -> None:
        """After beets placed an import's files: write our values into the files of the items
        the import stage changed, when ``import.write`` is on. beets itself writes only the
        items whose metadata it applied (not an as-is ``-A`` import); for those, our values
        went with its write and are not written twice."""
        items = [item for item in task.imported_items() if item.id in self._imported]
        self._imported.difference_update(item.id for item in items)
        beets_wrote = task.apply or getattr(task.choice_flag, "name", "") == "RETAG"
        if not session.config["write"].get(bool) or beets_wrote:
            return
        # beets runs a plugin's listener with the plugin's log level set and asserts that none of
        # its listeners is running already; our `write` listener runs inside this one (through
        # try_write), so the level goes back to unset meanwhile and is restored after.
        level = self._log.level
        self._log.setLevel(logging.NOTSET)
        try:
            for item in items:
                item.try_write()
                item.store()  # the file's new mtime
        finally:
            self._log.setLevel(level)

    def similar_command(self, lib: Any, opts: Any, args: list[str]) -> None:
        from lightning_module.beets_plugin import similar

        if not args:
            raise ui.UserError("audiosimilar needs a query naming the item(s) to start from")
        seeds = list(lib.items(args))
        if not seeds:
            raise ui.UserError(f"no item matches {' '.join(args)!r}")
        model = self.model()
        index_path = self.config["index"].as_str() or similar.default_index_path(
            config.config_dir()
        )
        everything = list(lib.items())
        try:
            refreshed = similar.refresh_index(everything, model, index_path, self._warn)
        except (LookupError, ValueError) as err:  # no file on disk; the model or index unusable
            raise ui.UserError(str(err).splitlines()[0]) from err
        if refreshed.stats.embedded or refreshed.stats.removed or refreshed.missing:
            missing = len(refreshed.missing)
            self._log.info("index: {}; {} item(s) not on disk", refreshed.stats.line(), missing)
        by_path = {os.path.realpath(os.fsdecode(item.path)): item for item in everything}
        seed_paths = [os.path.realpath(os.fsdecode(item.path)) for item in seeds]
        fmt = opts.format or config["format_item"].as_str()
        answers = similar.neighbours(refreshed, index_path, seed_paths, opts.count)
        for seed, (_, found) in zip(seeds, answers, strict=True):
            ui.print_(f"like {format(seed, fmt)} (cosine distance, 0 = same sound):")
            if not found:
                ui.print_("  not in the index: its file is missing or could not be decoded")
            for n in found:
                item = by_path.get(n.entry.path)
                shown = format(item, fmt) if item is not None else n.entry.path
                ui.print_(f"  {n.distance:.4f}  {shown}")
