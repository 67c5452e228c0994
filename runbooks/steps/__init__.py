"""Python callables that example runbooks import (``python: steps.module:function``)."""
