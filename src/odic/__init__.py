"""odic: an observer-dependent learned image codec.

    import odic
    codec = odic.load()                                   # the bundled default model
    data = codec.compress(img, quality=50, observer="machine")
    img2 = codec.decompress(data)
    odic.register_observer("mine", my_model)              # compress for your own model:
    data = codec.compress(img, bpp=0.25, observer="machine", refine=50, refine_classifier="mine")
"""

import warnings as _warnings

# CompressAI calls torch.jit.script at import; the deprecation note is noise for odic users.
_warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)

from .api import Codec, load  # noqa: E402
from .observers import register_observer  # noqa: E402
from .version import __version__  # noqa: E402
from .weights import ModelInfo, list_models  # noqa: E402

__all__ = ["Codec", "ModelInfo", "list_models", "load", "register_observer", "__version__"]

from . import pillow_plugin  # noqa: F401,E402  (registers .odic with Pillow)
