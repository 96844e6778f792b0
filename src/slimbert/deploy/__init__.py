"""Deployment: the Lambda / Cloud Functions package, local emulators, invoke and predict.

``platforms`` (entry points, CPU per memory size, limits) · ``toolchain`` (Python 3.12, venvs,
the emulator binaries, qemu) · ``wheels`` (pins, locks, pip) · ``contents`` (what goes into a
package) · ``archive`` (the zip and its size report) · ``sbom`` · ``package`` (the stage) ·
``local`` (the function served on this machine) · ``invoke`` (the stage) · ``predict``.
"""
