"""`hearth bundle`: an offline install tarball (server/bundle/cli.py has the layout).

llama_wheel  the portable llama-cpp-python wheel (or the native one, with a warning)
wheelhouse   every dependency as a wheel, and requirements.lock with their sha256
payload      models, adapters and the serve.yaml naming them
sbom         an offline install check, and the CycloneDX SBOM of that environment
archive      SHA256SUMS and the tarball, written atomically
"""
