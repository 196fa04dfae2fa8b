from tests.fixtures.services import *  # noqa: F403
