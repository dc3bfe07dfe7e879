# Everyday tasks. `make test` is what CI runs (see .ci/run).
PY ?= .venv/bin/python
PYBABEL ?= .venv/bin/pybabel

.PHONY: venv locales check-locales test lint bench run lock

venv: .venv/.installed
# Quiet (`@`, `-q`): set-up should not bury what `make run` says it is starting.
.venv/.installed: pyproject.toml
	@python3 -m venv .venv
	@.venv/bin/pip install -q --upgrade pip
	@.venv/bin/pip install -q -e ".[test]"
	@touch $@

# Extract msgids from the code and the study definition, merge into both catalogs, compile.
locales: venv
	$(PYBABEL) extract -F pyproject.toml --no-location --sort-output -c TRANSLATORS: \
		-o locales/messages.pot bot conversations
	$(PYBABEL) update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching
	$(PYBABEL) compile -d locales -D messages --statistics

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# Installs the Debian packages the tests need (charts' CJK font, Chromium for the browser test)
# when missing, then lints, type-checks and runs every test.
test: venv
	bash .ci/system-packages
	$(PYBABEL) -q compile -d locales -D messages
	.venv/bin/ruff check .
	.venv/bin/mypy
	$(PY) -m pytest -q

bench: venv
	$(PY) -m bench

# The real bot when TELEGRAM_BOT_TOKEN is configured, otherwise the local sandbox (a browser
# page on http://127.0.0.1:8080 with demo data); the first line printed says which.
run:
	@if [ -n "$$TELEGRAM_BOT_TOKEN" ] || grep -qs '^TELEGRAM_BOT_TOKEN=..*' .env; then \
		echo "make run: TELEGRAM_BOT_TOKEN is set: setting up, then the real bot."; \
	else \
		echo "make run: no TELEGRAM_BOT_TOKEN: setting up, then the local sandbox on http://127.0.0.1:8080/"; \
	fi
	@$(MAKE) -s --no-print-directory run-venv
	@$(RUN_PYBABEL) -q compile -d locales -D messages
	@$(RUN_VENV)/bin/diarybot up

# The environment that runs the bot has the runtime packages only, exactly as pinned (with
# their hashes) in requirements.lock: no test or lint tools. The project itself is installed
# editable on top (`--no-deps`: the lock already has everything; `pip check` proves it).
# pip's own chatter goes to .venv-run/install.log, shown only when something fails.
RUN_VENV ?= .venv-run
RUN_PYBABEL ?= $(RUN_VENV)/bin/pybabel
.PHONY: run-venv
run-venv: $(RUN_VENV)/.installed
$(RUN_VENV)/.installed: requirements.lock pyproject.toml setup.py
	@echo "make run: installing the pinned runtime packages (requirements.lock) into $(RUN_VENV)/"
	@python3 -m venv $(RUN_VENV)
	@{ $(RUN_VENV)/bin/pip install --require-hashes -r requirements.lock \
		&& $(RUN_VENV)/bin/pip install --no-deps -e . \
		&& $(RUN_VENV)/bin/pip check; } > $(RUN_VENV)/install.log 2>&1 \
		|| { cat $(RUN_VENV)/install.log; echo "make run: installing failed (above)"; exit 1; }
	@touch $@

# Re-pin requirements.lock after changing [project] dependencies in pyproject.toml (needs the
# package index). tests/test_packaging.py fails while the lock and pyproject.toml disagree.
lock: venv
	.venv/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
		--python-platform linux -q -o requirements.lock
