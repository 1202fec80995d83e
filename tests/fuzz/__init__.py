"""The ingress fuzz's parts (``tests/test_fuzz_ingress.py``): the gateway's config, request
strategies, upstream faults, the raw HTTP client and the checks."""
