"""Tests of the host side: the SSM document, the deploy script and the sample app."""
