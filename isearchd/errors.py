"""Every error ImgSearch shows to a user.

Each exception's message is shown to the user as it is (the CLI prints it as one red line, the
server sends it as ``{"ok": false, "error": {"code": ..., "message": ...}}``), so a message says
what went wrong and, where there is one, what to do about it. ``code`` is stable: it is part of
the protocol and clients match on it.

    ISearchError                      code
    ├── ConfigError                   config_error
    ├── InvalidRequest                invalid_request   (bad arguments, bad database name, ...)
    │   ├── BadField                  invalid_request   (a request field's value; also a ValueError)
    │   └── ProtocolError             protocol_error    (malformed or oversized protocol input)
    ├── NotFound                      not_found         (a file or database that does not exist)
    ├── BadImage                      bad_image         (a file that cannot be decoded as an image)
    ├── ModelError                    model_error       (unknown key, wrong or broken checkpoint)
    │   └── WeightsMissing            weights_missing   (weights not cached and not fetchable)
    ├── ModelMismatch                 model_mismatch    (database built by another model)
    ├── StoreError                    store_error       (corrupt catalog, failed index write)
    │   └── DiskFull                  disk_full         (no space left to save what was added)
    ├── PermissionDenied              permission_denied (TCP client asked for a server-side path, bad token)
    ├── ServiceNotRunning             service_not_running
    ├── ServiceError                  service_error     (start/stop failed, already running)
    └── Busy                          busy              (the daemon is shutting down)

``from_code`` maps a protocol error back to its class, so the Python client raises the same
exception the daemon raised.
"""

from __future__ import annotations


class ISearchError(Exception):
    """Base class. The message is shown to the user verbatim."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(ISearchError):
    """The configuration file or a setting is invalid."""

    code = "config_error"


class InvalidRequest(ISearchError):
    """The request's arguments are wrong (bad option value, bad database name, empty text)."""

    code = "invalid_request"


class BadField(InvalidRequest, ValueError):
    """A request field holds a value its type does not allow (``isearchd.messages``). A ValueError
    too: raised while the protocol decodes a request, msgspec reports it with the field's place
    (``plus[0]: ...``); raised where a request is built, it is an ``InvalidRequest`` like any other."""


class ProtocolError(InvalidRequest):
    """A protocol line is not valid JSON, too long, or not a request object."""

    code = "protocol_error"


class NotFound(ISearchError):
    """A file, folder or database does not exist."""

    code = "not_found"


class BadImage(ISearchError):
    """A file cannot be decoded as an image. The message names the file and the reason."""

    code = "bad_image"

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ModelError(ISearchError):
    """Unknown model key, a checkpoint of the wrong architecture, or a broken checkpoint."""

    code = "model_error"


class WeightsMissing(ModelError):
    """The weights are not in the cache and could not be fetched."""

    code = "weights_missing"


class ModelMismatch(ISearchError):
    """A database was built with another model; embedding spaces are never mixed."""

    code = "model_mismatch"


class StoreError(ISearchError):
    """The catalog or the vector index cannot be read or written."""

    code = "store_error"


class DiskFull(StoreError):
    """The disk holding a database is full; what was committed before is safe."""

    code = "disk_full"


class PermissionDenied(ISearchError):
    """The client may not do this (TCP client naming a server-side path, wrong token)."""

    code = "permission_denied"


class ServiceNotRunning(ISearchError):
    """No daemon answers at the bind address."""

    code = "service_not_running"


class ServiceError(ISearchError):
    """Starting or stopping the daemon failed, or one is already running."""

    code = "service_error"


class Busy(ISearchError):
    """The daemon cannot take the request now (shutting down)."""

    code = "busy"


_BY_CODE: dict[str, type[ISearchError]] = {}


def _register(cls: type[ISearchError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)  # a subclass sharing its parent's code (BadField) maps to the parent
    for sub in cls.__subclasses__():
        _register(sub)


_register(ISearchError)


def from_code(code: str, message: str) -> ISearchError:
    """Rebuild the exception a daemon reported as ``{"code", "message"}``."""
    cls = _BY_CODE.get(code, ISearchError)
    if cls is BadImage:
        err: ISearchError = ISearchError.__new__(BadImage)
        ISearchError.__init__(err, message)
        return err
    return cls(message)
