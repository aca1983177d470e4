"""The Client's words methods: everything the database knows of one photo (with the text read in
it), and turning the reading of words on or off.

Mixed into ``Client`` (``isearchd.client.api``), whose ``request`` and ``db_name`` they use.
"""

from __future__ import annotations

import os
from typing import Any

from isearchd.files.scan import absolute
from isearchd.messages import ImageInfo, PhotoInfoRequest, Request, WordsSettingsRequest, WordsState

__all__ = ["WordsMethods"]


class WordsMethods:
    db_name: str

    def request(self, request: Request, progress: Any = None) -> Any:  # the Client's
        raise NotImplementedError

    def photo_info(self, path: str | os.PathLike[str]) -> ImageInfo:
        """Everything this database knows of the photo at ``path`` (its file name in a database
        of name labels): its facts, ``people`` (the named people in it), ``words`` (its text:
        ``""`` when it holds none, None until it has been read) and ``lines`` (each line's text,
        box and score). ``NotFound`` when it is not in the database."""
        info: ImageInfo = self.request(PhotoInfoRequest(db=self.db_name, label=absolute(path)))
        return info

    def words_settings(self, *, enabled: bool) -> WordsState:
        """Turn the reading of words on or off for this database; off deletes every text read in
        it (on again, its photos are read again)."""
        state: WordsState = self.request(WordsSettingsRequest(db=self.db_name, enabled=enabled))
        return state
