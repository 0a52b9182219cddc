# cbhttp: a circuit-breaking HTTP/JSON client for C.
#
#   make                 libcbhttp.a and libcbhttp.so
#   make test            build and run the Check suites (installs missing deps)
#   make demo            the scripted outage on the embedded fixture server
#   make bench           the benchmarks, side by side with raw libcurl
#   make install PREFIX=/usr/local DESTDIR=
#
# User CFLAGS/CPPFLAGS/LDFLAGS are appended to what the build needs, never
# replacing it. BUILD names the output folder so that instrumented builds
# (make BUILD=build-asan CFLAGS=-fsanitize=address ...) live side by side.

VERSION_MAJOR = 0
VERSION_MINOR = 1
VERSION_PATCH = 0
VERSION = $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=
BUILD ?= build

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wwrite-strings
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

DEP_PKGS = libcurl libcjson
DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEP_PKGS) 2>/dev/null)
DEP_LIBS = $(shell $(PKG_CONFIG) --libs $(DEP_PKGS) 2>/dev/null) -lpthread
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags check libmicrohttpd 2>/dev/null)
TEST_LIBS = $(shell $(PKG_CONFIG) --libs check libmicrohttpd 2>/dev/null) -lm

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
EXAMPLE_BIN = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
BENCH_BIN = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

.PHONY: all deps test demo bench examples install uninstall clean check-exports \
        contract fixture

all: $(STATIC) $(BUILD)/libcbhttp.so

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h include/*.h include/cbhttp/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(REAL_CPPFLAGS) $(REAL_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(REAL_LDFLAGS) $(DEP_LIBS)

$(BUILD)/libcbhttp.so: $(SHARED)
	ln -sf libcbhttp.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf libcbhttp.so.$(VERSION) $@

# The fixture server: a library for tests, examples, the demo and benches,
# and a standalone binary that prints its port.
$(BUILD)/fix/%.o: fixtures/%.c $(wildcard fixtures/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(REAL_CPPFLAGS) -Ifixtures $(REAL_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(FIXLIB): $(FIX_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(FIXSERVER): fixtures/server_main.c $(FIXLIB)
	$(CC) $(REAL_CPPFLAGS) -Ifixtures $(REAL_CFLAGS) $(TEST_CFLAGS) $< -o $@ \
	    $(FIXLIB) $(REAL_LDFLAGS) $(TEST_LIBS) -lpthread

fixture: $(FIXSERVER)

LINK_APP = $(CC) $(REAL_CPPFLAGS) -Ifixtures -Itests $(REAL_CFLAGS) $(TEST_CFLAGS) $^ -o $@ \
           $(REAL_LDFLAGS) $(TEST_LIBS) $(DEP_LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(STATIC) $(FIXLIB)
	@mkdir -p $(dir $@)
	$(LINK_APP)

$(BUILD)/examples/%: examples/%.c $(STATIC) $(FIXLIB)
	@mkdir -p $(dir $@)
	$(LINK_APP)

$(BUILD)/bench/%: bench/%.c $(STATIC) $(FIXLIB)
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

bench: deps
	@$(MAKE) --no-print-directory CFLAGS="-O2 -g" $(BENCH_BIN)
	@sh scripts/run-bench.sh $(BUILD)

# Only cb_* and api_* (and cbhttp_version) may leave the shared library.
check-exports: $(BUILD)/libcbhttp.so
	@bad=$$(nm -D --defined-only $(SHARED) | awk '{print $$3}' | \
	    grep -Ev '^(cb_|api_|cbhttp_version$$)' || true); \
	if [ -n "$$bad" ]; then echo "unexpected exports: $$bad"; exit 1; fi; \
	echo "exports: only cb_*/api_* symbols"

contract:
	@sh ../shared/contract/check.sh

$(BUILD)/cbhttp.pc: Makefile
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

install: all $(BUILD)/cbhttp.pc
	install -d $(DESTDIR)$(INCLUDEDIR)/cbhttp $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/cbhttp.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/cbhttp/*.h $(DESTDIR)$(INCLUDEDIR)/cbhttp/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libcbhttp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libcbhttp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcbhttp.so
	install -m 644 $(BUILD)/cbhttp.pc $(DESTDIR)$(LIBDIR)/pkgconfig/

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/cbhttp $(DESTDIR)$(INCLUDEDIR)/cbhttp.h
	rm -f $(DESTDIR)$(LIBDIR)/libcbhttp.* $(DESTDIR)$(LIBDIR)/pkgconfig/cbhttp.pc

clean:
	rm -rf build build-*
