# Thin wrapper over CMake for the short commands. See README.md.
#   make            release build: build/libebb.so, build/libebb.a
#   make check      every test, against the release and the EBB_DEBUG=3 build
#   make demo       memory going back to the OS, glibc vs ebb side by side
#   make install    PREFIX=/usr/local by default
#   make bench      benchmark suite (QUICK=1: < 2 min); make bench-instr: callgrind counts
#   make lint       clang-tidy and cppcheck over src/

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE  ?= cmake

.PHONY: all release debug check check-release check-debug demo install bench bench-smoke bench-instr lint clean

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

check-debug: debug
	cd build-debug && ctest --output-on-failure -j $(JOBS)

demo: release
	./demo/run.sh build

install: release
	$(CMAKE) --install build

bench: release
	./bench/run.sh $(if $(QUICK),--quick,)

bench-smoke: release
	./bench/run.sh --smoke

bench-instr: release
	./bench/instr.sh

lint:
	clang-tidy --quiet src/*.c src/prim/*.c -- -Iinclude -Isrc -D_GNU_SOURCE
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr -Iinclude -Isrc src

clean:
	rm -rf build build-debug
