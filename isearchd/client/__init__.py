"""The Python client: the API of the original ImgSearch README, over the JSON-lines protocol.

    from imgsearch.client import Client     # or: from isearchd import Client
    cli = Client(db_name="default", bind="~/.isearch/isearch.sock")
    cli.add_images(["./photos/"], label_type="path")     # -> images added; details in cli.last_add
    cli.add(["./photos/"])                                # -> AddReport(added, skipped, failed)
    cli.search("./query.jpg", num=5, similarity=80)      # -> [(path, similarity%), ...]
    cli.search("red apple")                               # text search
    cli.search("beach", after="2019-06", place="Lisbon", plus=[("sunset", 0.5)])   # filters, parts
    cli.search(like="./photos/beach.jpg")                 # like an image already in the database
    cli.compare_images("a.jpg", "b.jpg")                  # -> 0-100
    cli.list_dbs(); cli.get_db_info(); cli.clear_db()

Every failure raises an ``isearchd.errors`` exception (the same class the daemon raised); nothing is
swallowed into ``None``. Over a Unix socket the daemon reads files itself (paths are made
absolute here); over TCP this client reads the files and sends their bytes, since a TCP daemon
never reads paths named by a client (``uploads``). Our own calls return the reply types of
``isearchd.messages`` (``search_hits`` a list of ``Hit``, ``status`` a ``Status``...); the
original API's keep their documented shapes.

A ``Client`` keeps one connection open and may be shared between threads (calls are serialised;
``last_add`` is each thread's own); use one client per thread for parallel requests.
"""

from isearchd.client.api import Client
from isearchd.client.connection import ProgressCallback
from isearchd.messages import AddReport, Hit, Progress

__all__ = ["AddReport", "Client", "Hit", "Progress", "ProgressCallback"]
