# cbhttp: a circuit-breaking HTTP/JSON client for C.
#
#   make                 libcbhttp.a and libcbhttp.so
#   make test            build and run the Check suites (installs missing deps)
#   make demo            the scripted outage on the embedded fixture server
#   make bench           the benchmarks, side by side with raw libcurl
#   make coverage        the suites on an instrumented build, gcovr's table
#   make install PREFIX=/usr/local DESTDIR=   (make uninstall, the same way)
#   make dist            build/cbhttp-VERSION.tar.gz of the tracked files
#
# User CFLAGS/CPPFLAGS/LDFLAGS are appended to what the build needs, never
# replacing it. BUILD names the output folder so that instrumented builds
# (make BUILD=build-asan CFLAGS=-fsanitize=address ...) live side by side.

# The version is written once, in include/cbhttp/common.h, and read from
# there (as hiredis's Makefile reads hiredis.h): the .so names, cbhttp.pc,
# the CMake files and the tarball take it from the header.
VERSION_H = include/cbhttp/common.h
version_of = $(shell sed -n 's/^.define CBHTTP_VERSION_$(1)  *\([0-9][0-9]*\)$$/\1/p' $(VERSION_H))
VERSION_MAJOR := $(call version_of,MAJOR)
VERSION_MINOR := $(call version_of,MINOR)
VERSION_PATCH := $(call version_of,PATCH)
ifeq ($(words $(VERSION_MAJOR) $(VERSION_MINOR) $(VERSION_PATCH)),3)
VERSION = $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
else
$(error cannot read CBHTTP_VERSION_MAJOR/MINOR/PATCH from $(VERSION_H))
endif

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=
BUILD ?= build

CC ?= cc
# Quiet by default: one line per file; make V=1 shows the commands.
ifeq ($(V),1)
Q =
else
Q = @
endif
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wwrite-strings
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

DEP_PKGS = libcurl libcjson
DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEP_PKGS) 2>/dev/null)
DEP_LIBS = $(shell $(PKG_CONFIG) --libs $(DEP_PKGS) 2>/dev/null) -lpthread
# Tests and examples only (the library never links them): Check and
# libmicrohttpd for the suites and the fixture server, libuv and libevent
# for the event-loop adapters (include/cbhttp/adapters/). Separate
# pkg-config calls, so that one missing package does not blank the rest.
LOOP_PKGS = libuv libevent
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags check libmicrohttpd 2>/dev/null) \
              $(shell $(PKG_CONFIG) --cflags $(LOOP_PKGS) 2>/dev/null)
TEST_LIBS = $(shell $(PKG_CONFIG) --libs check libmicrohttpd 2>/dev/null) \
            $(shell $(PKG_CONFIG) --libs $(LOOP_PKGS) 2>/dev/null) -lm

REAL_CPPFLAGS = -Iinclude -Isrc -D_GNU_SOURCE $(CPPFLAGS)
REAL_CFLAGS = -std=c11 -fPIC -fvisibility=hidden -DCBHTTP_BUILDING $(WARNINGS) \
              $(DEP_CFLAGS) $(CFLAGS)
REAL_LDFLAGS = $(LDFLAGS)

SONAME = libcbhttp.so.$(VERSION_MAJOR)
LIB_SRC = $(sort $(wildcard src/*.c))
LIB_OBJ = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
STATIC = $(BUILD)/libcbhttp.a
SHARED = $(BUILD)/libcbhttp.so.$(VERSION)

FIX_SRC = $(sort $(filter-out fixtures/server_main.c,$(wildcard fixtures/*.c)))
FIX_OBJ = $(FIX_SRC:fixtures/%.c=$(BUILD)/fix/%.o)
FIXLIB = $(BUILD)/libfixture.a
FIXSERVER = $(BUILD)/cbh-fixture

TEST_SRC = $(sort $(wildcard tests/check_*.c))
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS = $(sort $(wildcard tests/helpers/*.c))
ADAPTER_HDR = $(sort $(wildcard include/cbhttp/adapters/*.h))
EXAMPLE_BIN = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
BENCH_BIN = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

.PHONY: all deps test demo bench examples install uninstall clean check-exports \
        contract fixture fuzz fuzz-run coverage

all: $(STATIC) $(BUILD)/libcbhttp.so

deps:
	@sh scripts/deps.sh

# Each object depends on the headers it really includes (-MMD -MP write
# them to a .d file beside it), not on every header; and on this Makefile,
# whose flags it was built with.
$(BUILD)/obj/%.o: src/%.c Makefile
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) $(REAL_CPPFLAGS) $(REAL_CFLAGS) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs -o $@ $^ $(REAL_LDFLAGS) $(DEP_LIBS)

$(BUILD)/libcbhttp.so: $(SHARED)
	$(Q)ln -sf libcbhttp.so.$(VERSION) $(BUILD)/$(SONAME)
	$(Q)ln -sf libcbhttp.so.$(VERSION) $@

# The fixture server: a library for tests, examples, the demo and benches,
# and a standalone binary that prints its port.
$(BUILD)/fix/%.o: fixtures/%.c Makefile
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) $(REAL_CPPFLAGS) -Ifixtures $(REAL_CFLAGS) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

-include $(LIB_OBJ:.o=.d) $(FIX_OBJ:.o=.d)

$(FIXLIB): $(FIX_OBJ)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(FIXSERVER): fixtures/server_main.c $(FIXLIB)
	$(Q)$(CC) $(REAL_CPPFLAGS) -Ifixtures $(REAL_CFLAGS) $(TEST_CFLAGS) $< -o $@ \
	    $(FIXLIB) $(REAL_LDFLAGS) $(TEST_LIBS) -lpthread

fixture: $(FIXSERVER)

# Programs that use the library: not built as part of it (no
# CBHTTP_BUILDING, default visibility).
APP_CFLAGS = -std=c11 $(WARNINGS) $(DEP_CFLAGS) $(TEST_CFLAGS) $(CFLAGS)
LINK_APP = @[ "$(V)" = 1 ] || echo "  LINK    $@"; $(CC) $(REAL_CPPFLAGS) -Ifixtures -Itests $(APP_CFLAGS) \
           $(filter-out %.h,$^) -o $@ \
           $(REAL_LDFLAGS) $(TEST_LIBS) $(DEP_LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(STATIC) $(FIXLIB) $(ADAPTER_HDR)
	@mkdir -p $(dir $@)
	$(LINK_APP)

$(BUILD)/examples/%: examples/%.c $(STATIC) $(FIXLIB) $(ADAPTER_HDR)
	@mkdir -p $(dir $@)
	$(LINK_APP)

# Benchmarks share the tests' private nginx (plain POSIX, no Check).
$(BUILD)/bench/%: bench/%.c tests/helpers/nginx.c $(STATIC) $(FIXLIB)
	@mkdir -p $(dir $@)
	$(LINK_APP)

# Runs every suite even when one fails, then fails if any did. TESTS=name
# runs one (make test TESTS=check_breaker). RUNNER wraps each binary
# (RUNNER='valgrind --error-exitcode=1 ...').
TESTS ?= $(TEST_BIN:$(BUILD)/tests/%=%)
test: deps
	@$(MAKE) --no-print-directory all $(addprefix $(BUILD)/tests/,$(TESTS))
	@BUILD=$(BUILD) RUNNER="$(RUNNER)" sh scripts/run-tests.sh $(TESTS)

examples: $(EXAMPLE_BIN)

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/examples/demo
	@$(BUILD)/examples/demo

# Benchmarks always use their own optimised build, never an instrumented one.
BENCH_BUILD = build-bench
bench: deps
	@$(MAKE) --no-print-directory BUILD=$(BENCH_BUILD) CFLAGS="-O2 -g" \
	    $(patsubst $(BUILD)/%,$(BENCH_BUILD)/%,$(BENCH_BIN))
	@sh scripts/run-bench.sh $(BENCH_BUILD)

# make coverage: the library, fixture and suites built in their own folder
# with gcov instrumentation at -O0 (so lines and branches are the source's),
# every suite run (forked, as make test does; TESTS= narrows it), then
# gcovr's figures for src/ alone: a per-file table of lines and branches,
# the totals, and $(COV_BUILD)/coverage.txt and coverage.html. The counters
# are updated atomically (-fprofile-update=atomic): the threaded suites
# would otherwise lose increments and report taken branches as missed.
# Counts from an earlier run, and the notes of a source file since removed,
# are deleted first, so the figures are this run's. A failing suite still
# gets its report, then fails the target; the percentages never do unless
# COV_FAIL_UNDER=1 makes the goal (COV_GOAL_LINES, COV_GOAL_BRANCHES) one.
COV_BUILD = build-cov
COV_CFLAGS = -O0 -g --coverage -fprofile-update=atomic
COV_GOAL_LINES ?= 99
COV_GOAL_BRANCHES ?= 95
COV_FAIL_UNDER ?= 0
GCOVR = gcovr --root . --filter 'src/' --object-directory $(COV_BUILD)
coverage:
	@sh scripts/deps.sh --coverage
	@if [ -d $(COV_BUILD) ]; then find $(COV_BUILD) -name '*.gcda' -delete; fi
	@for g in $(COV_BUILD)/obj/*.gcno; do \
	    [ ! -e "$$g" ] || [ -e "src/$$(basename "$$g" .gcno).c" ] || rm -f "$$g"; done
	@status=0; \
	$(MAKE) --no-print-directory BUILD=$(COV_BUILD) CFLAGS='$(COV_CFLAGS)' \
	    LDFLAGS='--coverage' test || status=$$?; \
	$(GCOVR) --json $(COV_BUILD)/coverage.json || exit 1; \
	set -- --root . --add-tracefile $(COV_BUILD)/coverage.json; \
	gcovr "$$@" --csv $(COV_BUILD)/coverage.csv && \
	gcovr "$$@" --txt $(COV_BUILD)/coverage.txt && \
	gcovr "$$@" --branches --txt $(COV_BUILD)/coverage-branches.txt && \
	gcovr "$$@" --html-details $(COV_BUILD)/coverage.html || exit 1; \
	echo; \
	awk -F, 'NR == 1 { printf "%-22s %14s %8s %14s %8s\n", "file", "lines", "%", "branches", "%"; next } \
	    { lt += $$2; lc += $$3; bt += $$5; bc += $$6; \
	      printf "%-22s %6d / %-5d %7.1f%% %6d / %-5d %7.1f%%\n", $$1, $$3, $$2, \
	             $$2 ? 100 * $$3 / $$2 : 100, $$6, $$5, $$5 ? 100 * $$6 / $$5 : 100 } \
	    END { printf "%-22s %6d / %-5d %7.1f%% %6d / %-5d %7.1f%%\n", "TOTAL", lc, lt, \
	          lt ? 100 * lc / lt : 100, bc, bt, bt ? 100 * bc / bt : 100 }' \
	    $(COV_BUILD)/coverage.csv; \
	echo; \
	echo "report: $(COV_BUILD)/coverage.html (missed lines per file: $(COV_BUILD)/coverage.txt)"; \
	gcovr "$$@" --print-summary --fail-under-line $(COV_GOAL_LINES) \
	    --fail-under-branch $(COV_GOAL_BRANCHES) > /dev/null 2>&1 && \
	    echo "coverage: goal met (>= $(COV_GOAL_LINES)% lines, >= $(COV_GOAL_BRANCHES)% branches)" || \
	    { echo "coverage: goal not met (>= $(COV_GOAL_LINES)% lines, >= $(COV_GOAL_BRANCHES)% branches)"; \
	      [ "$(COV_FAIL_UNDER)" = 1 ] && status=1; }; \
	exit $$status

# Only cb_* and api_* (and cbhttp_version) may leave the shared library.
check-exports: $(BUILD)/libcbhttp.so
	@bad=$$(nm -D --defined-only $(SHARED) | awk '{print $$3}' | \
	    grep -Ev '^(cb_|api_|cbhttp_version$$)' || true); \
	if [ -n "$$bad" ]; then echo "unexpected exports: $$bad"; exit 1; fi; \
	echo "exports: only cb_*/api_* symbols"

contract:
	@sh ../shared/contract/check.sh

# libFuzzer targets (clang, Debian's libclang-rt-14-dev), each linked with a
# copy of the library built with the same instrumentation in build-fuzz/.
# make fuzz-run runs every target on a scratch copy of its seed corpus
# (tests/fuzz/corpus/NAME/), so the repository is not modified.
FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
# CI runs a fixed seed and a fixed number of inputs, so that its verdict
# is the same on every machine, fast or slow. FUZZ_RUNS is the count of
# every target; FUZZ_RUNS_<target> (FUZZ_RUNS_fuzz_config=...) overrides it
# for one. FUZZ_MAX_SECONDS is only a net for a hung run, far above what any
# target needs: a target that stops short of its count, for that or any
# other reason, fails the run instead of passing on fewer inputs. A crash
# input is written to build-fuzz/. For a real hunt: make fuzz, then run a
# target by hand.
FUZZ_RUNS ?= 300000
FUZZ_MAX_SECONDS ?= 3600
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all
fuzz_runs = $(or $(FUZZ_RUNS_$(notdir $(1))),$(FUZZ_RUNS))

fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
	    CFLAGS='-g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN)' build-fuzz/libcbhttp.a
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libcbhttp.a
	clang $(REAL_CPPFLAGS) $(DEP_CFLAGS) -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) $< \
	    build-fuzz/libcbhttp.a $(DEP_LIBS) -o $@

# libFuzzer ends with "Done N runs in S second(s)"; N is checked against
# the count asked for.
fuzz-run: fuzz
	@set -e; for spec in $(foreach f,$(FUZZ_BIN),$(f):$(call fuzz_runs,$(f))); do \
	    f=$${spec%%:*}; runs=$${spec##*:}; \
	    name=$$(basename $$f); scratch=$$(mktemp -d); \
	    if [ -d tests/fuzz/corpus/$$name ]; then cp -r tests/fuzz/corpus/$$name/. $$scratch/; fi; \
	    echo "== $$name ($$runs inputs)"; \
	    if ! $$f -seed=1 -runs=$$runs -max_total_time=$(FUZZ_MAX_SECONDS) \
	        -artifact_prefix=build-fuzz/ $$scratch > $$scratch.log 2>&1; then \
	        cat $$scratch.log; rm -rf $$scratch $$scratch.log; exit 1; fi; \
	    done_runs=$$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' $$scratch.log); \
	    if [ "$${done_runs:-0}" -lt "$$runs" ]; then \
	        tail -n 5 $$scratch.log; rm -rf $$scratch $$scratch.log; \
	        echo "$$name: stopped after $${done_runs:-0} of $$runs inputs" \
	             "(FUZZ_MAX_SECONDS=$(FUZZ_MAX_SECONDS) reached?)"; exit 1; fi; \
	    grep "^Done" $$scratch.log; rm -rf $$scratch $$scratch.log; \
	done

# The files that say where the library was installed (cbhttp.pc, the CMake
# package config) are made again whenever the version or a path changes, so
# that a build for /usr/local followed by an install for /usr cannot ship
# the first one's paths. install-vars holds what they were made with.
INSTALL_VARS = $(VERSION) $(PREFIX) $(LIBDIR) $(INCLUDEDIR)
$(BUILD)/install-vars: FORCE
	@mkdir -p $(BUILD)
	@echo '$(INSTALL_VARS)' | cmp -s - $@ || echo '$(INSTALL_VARS)' > $@

$(BUILD)/cbhttp.pc: Makefile $(BUILD)/install-vars
	@mkdir -p $(BUILD)
	@printf '%s\n' \
	    'prefix=$(PREFIX)' \
	    'libdir=$(LIBDIR)' \
	    'includedir=$(INCLUDEDIR)' \
	    '' \
	    'Name: cbhttp' \
	    'Description: Circuit-breaking HTTP/JSON client on libcurl' \
	    'Version: $(VERSION)' \
	    'Requires.private: libcurl libcjson' \
	    'Libs: -L$${libdir} -lcbhttp' \
	    'Libs.private: -lpthread' \
	    'Cflags: -I$${includedir}' > $@

# find_package(cbhttp) for CMake users: cbhttpConfig.cmake and its version
# file in $(LIBDIR)/cmake/cbhttp, next to the .pc. They find the library
# from their own place (../.. is LIBDIR) and the headers by a path relative
# to it, so a tree staged with DESTDIR or moved elsewhere still works, as
# with CMake's configure_package_config_file.
CMAKEDIR = $(LIBDIR)/cmake/cbhttp
CMAKE_FILES = $(BUILD)/cmake/cbhttpConfig.cmake $(BUILD)/cmake/cbhttpConfigVersion.cmake
CMAKE_SUBST = -e 's|@CBHTTP_VERSION@|$(VERSION)|g' \
              -e 's|@CBHTTP_SHARED@|libcbhttp.so.$(VERSION)|g' \
              -e 's|@CBHTTP_SONAME@|$(SONAME)|g' \
              -e "s|@CBHTTP_INCLUDE_FROM_CMAKEDIR@|$$(realpath -m -s --relative-to='$(CMAKEDIR)' '$(INCLUDEDIR)')|g" \
              -e "s|@CBHTTP_SIZEOF_VOID_P@|$$(echo __SIZEOF_POINTER__ | $(CC) -E -P -x c -)|g"

$(BUILD)/cmake/%.cmake: cmake/%.cmake.in Makefile $(BUILD)/install-vars
	@mkdir -p $(dir $@)
	$(Q)sed $(CMAKE_SUBST) $< > $@.tmp && mv $@.tmp $@

install: all $(BUILD)/cbhttp.pc $(CMAKE_FILES)
	install -d $(DESTDIR)$(INCLUDEDIR)/cbhttp/adapters $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(CMAKEDIR)
	install -m 644 include/cbhttp.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/cbhttp/*.h $(DESTDIR)$(INCLUDEDIR)/cbhttp/
	install -m 644 include/cbhttp/adapters/*.h $(DESTDIR)$(INCLUDEDIR)/cbhttp/adapters/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libcbhttp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libcbhttp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcbhttp.so
	install -m 644 $(BUILD)/cbhttp.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 644 $(CMAKE_FILES) $(DESTDIR)$(CMAKEDIR)/

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/cbhttp $(DESTDIR)$(INCLUDEDIR)/cbhttp.h
	rm -f $(DESTDIR)$(LIBDIR)/libcbhttp.* $(DESTDIR)$(LIBDIR)/pkgconfig/cbhttp.pc
	rm -rf $(DESTDIR)$(CMAKEDIR)

# make dist: $(BUILD)/cbhttp-VERSION.tar.gz, the files git tracks (as they
# are in the work tree: uncommitted edits are in it, untracked files are
# not) under one cbhttp-VERSION/ folder. The same commit gives the same
# bytes: names sorted, owner root, every date the last commit's, gzip -n.
# DIST_FILES="..." replaces the list (outside a git checkout, for example).
DIST = cbhttp-$(VERSION)
DIST_FILES ?= $(shell git ls-files 2>/dev/null)
DIST_DATE = $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
dist:
	@if [ -z "$(strip $(DIST_FILES))" ]; then \
	    echo "make dist: no file list (not a git checkout? set DIST_FILES)" >&2; exit 1; fi
	@mkdir -p $(BUILD)
	@for f in $(DIST_FILES); do [ ! -e "$$f" ] || echo "$$f"; done > $(BUILD)/$(DIST).files
	$(Q)tar -c --sort=name --owner=0 --group=0 --numeric-owner --mode=go-w \
	    --mtime=@$(DIST_DATE) --transform='flags=r;s,^,$(DIST)/,' \
	    -f $(BUILD)/$(DIST).tar -T $(BUILD)/$(DIST).files
	$(Q)gzip -n -9 -f $(BUILD)/$(DIST).tar
	@rm -f $(BUILD)/$(DIST).files
	@echo $(BUILD)/$(DIST).tar.gz

.PHONY: dist FORCE
FORCE:

clean:
	rm -rf build build-*
