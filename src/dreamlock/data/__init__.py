"""Data steps: turn a folder of photos into a clean training set.

- ``imageio``: safe image loading (bomb guard, truncation, EXIF orientation, colour modes).
- ``crop``: target sizes, center/face/pad crop boxes, aspect-ratio buckets.
- ``faces``: offline face detection (scikit-image's LBP cascade).
- ``dedupe``: perceptual hashes to flag near-duplicate photos.
- ``prepare``: the ``dreamlock prepare`` step built from the above.
- ``caption``: the ``dreamlock caption`` step and its captioner registry.

Submodules are imported on use so that ``import dreamlock.data`` stays light.
"""
