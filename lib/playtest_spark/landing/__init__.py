"""Access to the landing storage: a local folder or a Blob Storage container.

Both implementations list and read through the same interface, so discovery and the
Spark workers run the same code against a laptop folder, Azurite and Azure Storage.
"""

from playtest_spark.landing.base import Landing, LandedObject, LandingSpec, open_landing

__all__ = ["Landing", "LandedObject", "LandingSpec", "open_landing"]
