# Understanding Variational Autoencoders: build the book, run the tests.
#
#   make book    build the website into _build/html (executes every chapter notebook)
#   make test    run the vaelib tests, then build the book (executes every chapter: a failing
#                check fails the build)
#   make nbval   run chapter notebooks without building the book (NB=chapters/05_kl.ipynb)
#   make serve   serve _build/html at http://127.0.0.1:8000
#   make site-test  open every built page in headless Chromium (after make book)
#   make learner-test  open the chapters in JupyterLab in headless Chromium, run one, move a slider
#   make mutation-test  plant each errata slip; a unit test and the chapter's check must fail
#   make reproduce  rerun the paper's Figs. 2 and 3 (about an hour) into chapters/data/
#   make screenshots  serve the screenshots that site-test took
#   make lint    ruff over vaelib, tests and benchmarks
#   make bench   run the benchmarks: training speed, the paper's algorithms, chapter run times
#   make clean   remove _build
#
# `make book` and `make test` first create .venv (if missing) and install requirements.txt
# plus vaelib (editable) into it. A stamp file records that, so later runs reinstall only
# when requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp
PORT   ?= 8000

# Kernels started by Jupyter Book and nbval must keep ipykernel's inline backend (it only
# picks it when MPLBACKEND is unset), or the figures vanish from the pages. Plain pytest
# processes get the non-interactive Agg backend.
NB_ENV   := env -u MPLBACKEND
TEST_ENV := env MPLBACKEND=Agg

# Data: like .ci/run, let vaelib's loaders copy a file missing from their cache (Frey Face) from
# ../shared/data, the offline copies next to the clone, when that folder exists and
# VAELIB_DATA_MIRROR is not already set (an empty value means "no mirror").
VAELIB_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export VAELIB_DATA_MIRROR

.PHONY: help venv book test nbval site-test learner-test mutation-test reproduce reproduce-smoke \
	screenshots serve lint bench clean

help:
	@sed -n '3,17p' Makefile

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e . --no-deps
	touch $(STAMP)

# --all: Sphinx cannot see that a notebook depends on vaelib, so every page is rebuilt and
# every notebook re-executed; -W -n --keep-going turns every warning into a failure.
book: $(STAMP)
	$(NB_ENV) VAELIB_BOOK_BUILD=1 $(BIN)/jupyter-book build --all -W -n --keep-going .

# The chapters are tested by building the book: the build executes every notebook top to bottom
# (a failing assert, an error or any warning fails it), so `make test` ends with `make book`
# instead of executing every notebook a second time.
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest
	$(MAKE) book

# One chapter (or several) without building the book: make nbval NB=chapters/05_kl.ipynb
NB ?= chapters/
nbval: $(STAMP)
	$(NB_ENV) $(BIN)/python -m pytest --nbval-lax --nbval-current-env $(NB)

# Needs Debian's chromium (/usr/bin/chromium; .ci/run installs it) and a built _build/html.
site-test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest --site tests/test_site.py

# Needs Debian's chromium too; starts JupyterLab from .venv on 127.0.0.1 (see tests/test_learner.py).
learner-test: $(STAMP)
	$(NB_ENV) $(BIN)/python -m pytest --learner tests/test_learner.py

# Plants every errata slip into vaelib or a chapter and requires a check to catch it.
mutation-test: $(STAMP)
	$(NB_ENV) $(BIN)/python tests/mutations.py

# The paper's Figs. 2 and 3 with longer runs than a book build affords: about an hour on two
# cores. The result is committed; chapter 9 draws it. The smoke run (seconds) keeps the script
# from rotting and writes outside the repository's data. An interrupted full run keeps the curves it
# finished: continue it with `python -m vaelib.book.paper reproduce --resume --out ...`.
reproduce: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m vaelib.book.paper reproduce --overwrite --out chapters/data/paper_reproduction.json

reproduce-smoke: $(STAMP)
	mkdir -p .cache
	$(TEST_ENV) $(BIN)/python -m vaelib.book.paper reproduce --smoke --overwrite --out .cache/paper_reproduction_smoke.json
	$(BIN)/python -c "import json; from vaelib.book.paper import arithmetic; r = json.load(open('.cache/paper_reproduction_smoke.json')); assert r['complete'] and r['smoke'] and r['arithmetic'] == arithmetic(), r; print('smoke record complete, arithmetic', r['arithmetic'])"

screenshots:
	@test -d _build/site-check || { echo "no screenshots yet: run 'make site-test' first"; exit 1; }
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/site-check

serve:
	@test -f _build/html/index.html || { echo "no _build/html yet: run 'make book' first"; exit 1; }
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lint: $(STAMP)
	$(BIN)/ruff check vaelib tests benchmarks

bench: $(STAMP)
	$(TEST_ENV) $(BIN)/python benchmarks/bench_train.py
	$(TEST_ENV) $(BIN)/python benchmarks/bench_paper.py
	$(NB_ENV) $(BIN)/python benchmarks/bench_chapters.py

clean:
	rm -rf _build
