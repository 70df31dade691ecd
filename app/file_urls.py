"""The URLs of many files in one folder of the API, from one ``url_for``: a finished default job's document names its
62 pictures twice, and building each URL took a fifth of a poll's time (cProfile, 2-core AMD EPYC); a scan page of
512 units names about 8,700 thumbnails and projections."""
import re

from flask import url_for

# Names of the characters a URL's path carries as they are (werkzeug's path converter quotes the others): the names
# VisNet writes. Any other name goes through url_for itself.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_EXAMPLE = "file.png"


def file_urls(endpoint: str, **values):
    """``url(name)``: what ``url_for(endpoint, name=name, **values)`` gives, for an endpoint whose last part is
    ``<path:name>``, the folder's URL built once."""
    folder = url_for(endpoint, name=_EXAMPLE, **values)[:-len(_EXAMPLE)]

    def url(name: str) -> str:
        return folder + name if PLAIN_NAME.fullmatch(name) else url_for(endpoint, name=name, **values)

    return url
