# Shortcuts; each target is one command of the README.
.PHONY: setup check demo

setup:
	scripts/setup

check: setup
	scripts/check

demo: setup
	.venv/bin/calltrail-report demo
