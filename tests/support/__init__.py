"""Helpers of the test suite: throwaway servers and workers, fault jobs, scan uploads, nginx."""
