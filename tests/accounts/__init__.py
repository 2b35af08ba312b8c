"""Tests of the account domain (accounts/)."""
