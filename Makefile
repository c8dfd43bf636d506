# The two commands of the README. Each does all set-up on a fresh machine.
.PHONY: demo test setup

demo: setup
	.venv/bin/citywatch demo

test:
	scripts/test.sh

setup:
	scripts/bootstrap.sh
