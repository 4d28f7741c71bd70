"""odic: an observer-dependent learned image codec.

    import odic
    codec = odic.load()                                   # the bundled default model
    data = codec.compress(img, quality=50, observer="machine")
    img2 = codec.decompress(data)
"""

from .api import Codec, load
from .version import __version__

__all__ = ["Codec", "load", "__version__"]
