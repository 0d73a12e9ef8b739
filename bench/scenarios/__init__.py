"""The five scenarios of issue #9, one module each."""
