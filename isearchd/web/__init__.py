"""The web page: search, look at and review the duplicates of your photos in a browser.

``control`` is what the daemon holds (light; the HTTP stack loads when the page starts),
``server`` runs uvicorn beside the daemon's socket, ``api`` holds the routes, ``guard`` the
security rules every request passes, ``thumbs`` the thumbnail cache, ``static/`` the page (plain
HTML, CSS and JavaScript: no build step, nothing from the network).
"""
