# Every target is a script under scripts/, so CI and the README run exactly the same thing.
.PHONY: run test lint fmt bench
run:
	./scripts/run.sh $(ARGS)
test:
	./scripts/test.sh $(ARGS)
lint:
	./scripts/lint.sh
fmt:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
bench:
	./scripts/bench.sh $(ARGS)
