"""The suite never reads or writes the user's own caches: `conftest` gives the session a home
of its own and every test an autotune cache of its own."""

import os
import pathlib
import pwd

from jaxconv.functional import autotune

REAL_HOME = pathlib.Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
SEEN: list[pathlib.Path] = []


def test_the_session_has_a_home_of_its_own():
    home = pathlib.Path.home().resolve()
    assert home != REAL_HOME and not home.is_relative_to(REAL_HOME / ".cache")
    assert pathlib.Path(os.path.expanduser("~")).resolve() == home
    cache = pathlib.Path(os.environ["XDG_CACHE_HOME"]).resolve()
    assert not cache.is_relative_to(REAL_HOME)


def test_each_test_has_an_autotune_cache_of_its_own():
    """Tests run in any order (or apart, on xdist workers): none sees another's picks."""
    path = autotune.cache_path().resolve()
    SEEN.append(path)
    assert not path.is_relative_to(REAL_HOME) and not path.exists()


def test_another_test_has_another_autotune_cache():
    path = autotune.cache_path().resolve()
    assert not path.exists() and path not in SEEN
