# SPDX-License-Identifier: MIT
# Thin wrapper over CMake for the short commands. See README.md.
#   make            release build: build/libebb.so, build/libebb.a
#   make check      every test, against the release and the EBB_DEBUG=3 build
#   make demo       memory going back to the OS, glibc vs ebb side by side
#   make install    PREFIX=/usr/local by default; runs ldconfig when that prefix's lib is in the loader's path
#   make uninstall  removes what make install put (build/install_manifest.txt; MANIFEST=... for another)
#   make bench      benchmark suite (QUICK=1: < 2 min); make bench-instr: callgrind counts
#   make lint       clang-tidy (.clang-tidy) and cppcheck over src/
#   make python     the Python package (python/) into build/python, against build/libebb-prefix.a
#   make check-python-numpy  NumPy's own test suite with and without ebb.install(), counts compared
# Sanitizer builds (test/prefix/README.md), each in a build directory of its own:
#   make check-ubsan  the whole suite, library and tests built with -fsanitize=undefined (gcc)
#   make check-asan   ASan+UBSan (clang) on libebb-prefix: test/prefix/stress.c and the fuzz seeds
#   make tsan         TSan (clang) on libebb-prefix: test/prefix/stress.c for TSAN_SECONDS (20);
#                     prints the distinct reports (build-tsan/tsan.log holds them all) and
#                     fails on any that test/prefix/tsan.supp does not name (TSAN_FAIL=0: never)
#   make fuzz         libFuzzer on libebb-prefix for FUZZ_SECONDS (60); the corpus grows in
#                     build-asan/fuzz-corpus, crashes land in build-asan/fuzz-crash-*

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE  ?= cmake
CLANG  ?= clang
FUZZ_SECONDS ?= 60
TSAN_SECONDS ?= 20
TSAN_FAIL ?= 1
PYTHON ?= python3
MANIFEST ?= build/install_manifest.txt

.PHONY: all release debug check check-release check-debug demo install uninstall bench bench-smoke bench-instr lint clean \
  check-ubsan asan-build check-asan tsan fuzz python check-python-numpy

all: release

release:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	$(CMAKE) --build build -j $(JOBS)

debug:
	$(CMAKE) -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug -DEBB_DEBUG=3 >/dev/null
	$(CMAKE) --build build-debug -j $(JOBS)

check: check-release check-debug

check-release: release
	cd build && ctest --output-on-failure -j $(JOBS)

# The EBB_DEBUG=3 build runs every test but four that the release build
# runs: the demo's promise (a timed demonstration, 90 s, whose code paths
# every other test goes through), `real_programs` (90 s of python, perl,
# git and gcc runs under the release library) and two of the three
# vm.max_map_count cases (minutes of mapping churn each;
# limits_map_count_small keeps that path under the deep assertions). They
# would take the suite past CI's time.
DEBUG_SKIP = ^(demo_promise|real_programs|limits_map_count_large|limits_map_count_realloc)$$

check-debug: debug
	cd build-debug && ctest --output-on-failure -j $(JOBS) -E '$(DEBUG_SKIP)'

# The build's output goes to build/demo-build.log, shown only if it fails.
demo:
	@mkdir -p build; echo "Building ebb (log: build/demo-build.log) ..."
	@$(MAKE) --no-print-directory release >build/demo-build.log 2>&1 || \
	  { cat build/demo-build.log; echo "make demo: the build failed; its log is above and in build/demo-build.log" >&2; exit 1; }
	@./demo/run.sh build

install: release
	$(CMAKE) --install build

uninstall:
	@test -f "$(MANIFEST)" || { echo "ebb: error: $(MANIFEST) not found: nothing was installed from this build (make install writes it)" >&2; exit 1; }
	$(CMAKE) -DMANIFEST="$(MANIFEST)" -P cmake/EbbUninstall.cmake

bench: release
	./bench/run.sh $(if $(QUICK),--quick,)

bench-smoke: release
	./bench/run.sh --smoke

bench-instr: release
	./bench/instr.sh

lint:
	clang-tidy --quiet src/*.c src/prim/*.c -- -Iinclude -Isrc -D_GNU_SOURCE -DEBB_DEBUG=3
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr -Iinclude -Isrc \
	  -D_GNU_SOURCE -DEBB_DEBUG=3 src

# UBSan: EBB_DEBUG=1 keeps the cheap assertions on as well. All tests but
# `options`, whose probe counts its large blocks (gcc's libubsan loads
# libstdc++, whose exception pool is one more, 71 KiB, malloc at start),
# the `demo_*` tests, timed demonstrations that run alone and go
# through no code the other tests do not, the installed-tree tests
# (`consumer_*`, `install_tree`, `uninstall_tree`: a consumer project
# linking the sanitized static library would need the sanitizer's runtime
# too, and they test packaging, not the allocator), and - to keep CI well
# inside its time - `real_programs`, `python`, the `cli*` tests and the
# map-count limit cases (minutes of python/git/gcc runs, of the command's
# sampling and of mapping churn over the same library code paths as the
# rest; all run in the release build, all but real_programs in the debug one).
# `purge` too: its case q (a fork child of a worker thread returns, and its
# atexit handler must run) failed once in two UBSan runs - the process
# exited 0 without the handler's output - and passes in the release and
# debug builds; until that is understood it runs there only.
UBSAN_SKIP = ^(options|demo_.*|real_programs|python|cli.*|consumer_.*|install_tree|uninstall_tree|limits_map_count_.*|purge)$$

check-ubsan:
	$(CMAKE) -S . -B build-ubsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBB_DEBUG=1 -DEBB_SANITIZE=undefined >/dev/null
	$(CMAKE) --build build-ubsan -j $(JOBS)
	cd build-ubsan && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -E '$(UBSAN_SKIP)'

asan-build:
	CC=$(CLANG) $(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBB_DEBUG=2 -DEBB_SANITIZE=address >/dev/null
	$(CMAKE) --build build-asan -j $(JOBS)

check-asan: asan-build
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --output-on-failure -j $(JOBS)

fuzz: asan-build
	mkdir -p build-asan/fuzz-corpus
	cd build-asan && ASAN_OPTIONS=abort_on_error=1 ./test/fuzz_api -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=4096 -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=fuzz-crash- \
	  fuzz-corpus ../test/fuzz/corpus

tsan:
	CC=$(CLANG) $(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBB_SANITIZE=thread >/dev/null
	$(CMAKE) --build build-tsan -j $(JOBS)
	@cd build-tsan && rc=0; \
	  TSAN_OPTIONS="halt_on_error=0 history_size=4 suppressions=$(CURDIR)/test/prefix/tsan.supp" \
	    ./test/stress_prefix --threads 4 --seconds $(TSAN_SECONDS) >tsan.log 2>&1 || rc=$$?; \
	  tail -n 1 tsan.log; $(PYTHON) ../test/prefix/tsan_summary.py tsan.log .. || rc=1; \
	  if [ "$(TSAN_FAIL)" = 0 ]; then rc=0; fi; exit $$rc

# The package's build and import directory is build/python (PYTHONPATH=build/python).
python: release
	cd python && /usr/bin/python3 setup.py -q build --build-base ../build/python-build --build-lib ../build/python

check-python-numpy: python
	PYTHONPATH=build/python /usr/bin/python3 python/tests/numpy_suite.py

clean:
	rm -rf build build-debug build-ubsan build-asan build-tsan
