"""Files and their names, the foundation every layer may use.

Owns: which file names are images (``formats``), walking files and folders to the image files
below them (``scan``), decoding an image file into RGB pixels (``images``: orientation, modes,
draft decoding, the bomb guard; the model and the engine both use it), and file names as text:
any bytes a file system allows, stored, carried in JSON and shown on a terminal without loss
(``names``).

May import: ``errors`` only.
"""
