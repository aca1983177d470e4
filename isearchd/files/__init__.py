"""Files and their names, the foundation every layer may use.

Owns: which file names are images (``formats``), walking files and folders to the image files
below them (``scan``), and file names as text: any bytes a file system allows, stored, carried
in JSON and shown on a terminal without loss (``names``).

May import: ``errors`` only.
"""
