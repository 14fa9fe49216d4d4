# Shortcuts for the README's scripts (make is optional: the scripts are the commands).
.PHONY: setup check demo

setup:
	scripts/setup

check:
	scripts/test

demo:
	scripts/demo
