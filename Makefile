# The one entry point: build, test, lint, format, asan, valgrind, fuzz, bench.
# `make test` on a fresh Debian machine installs what is missing (scripts/setup-deps) first.

CC       ?= cc
OPT      ?= -O2
WARN     := -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow -Wcast-qual -Wwrite-strings \
            -Wmissing-prototypes -Wstrict-prototypes
CFLAGS_X ?=
LDFLAGS_X ?=
LIBS     := -lcrypto -lcurl -licuuc -lcrypt -largon2
SRCS     := $(wildcard csrc/*.c)
HDRS     := $(wildcard csrc/*.h)
LUA54_INC := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
JIT_INC  := -I/usr/include/luajit-2.1
SO54     := build/5.4/authhero/aws/core.so
SOJIT    := build/jit/authhero/aws/core.so
# The other Luas the rockspec claims (make build-all; make test unit-tests each): build/5.N/...
LUAS_MORE := 5.1 5.2 5.3
SOMORE   := $(foreach v,$(LUAS_MORE),build/$(v)/authhero/aws/core.so)
lua_inc   = $(shell pkg-config --cflags lua$(1) 2>/dev/null || echo -I/usr/include/lua$(1))
BUSTED   := busted
LUA      := lua5.4
SPECS_UNIT := spec/unit
SPECS_INTEG := spec/integration
STATS    := build/test-stats

.PHONY: all deps deps-full build build-all jit test demo fault-run unit integration compat asan valgrind fuzz fuzz-ci \
        bench lint format format-check check-rockspec docs clean

all: deps build

deps:
	@scripts/setup-deps core

deps-full:
	@scripts/setup-deps full

build: $(SO54) $(if $(wildcard /usr/include/luajit-2.1/lua.h),$(SOJIT))

jit: $(SOJIT)

build-all: build $(SOMORE)

$(SO54): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(WARN) -fPIC -shared $(LUA54_INC) $(CFLAGS_X) -o $@ $(SRCS) $(LIBS) $(LDFLAGS_X)

$(SOJIT): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(WARN) -fPIC -shared $(JIT_INC) $(CFLAGS_X) -o $@ $(SRCS) $(LIBS) $(LDFLAGS_X)

$(SOMORE): build/%/authhero/aws/core.so: $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(WARN) -fPIC -shared $(call lua_inc,$*) $(CFLAGS_X) -o $@ $(SRCS) $(LIBS) $(LDFLAGS_X)

# Unit specs under lua5.4, LuaJIT, 5.1, 5.2 and 5.3, a short fuzz run, integration specs against
# DynamoDB Local (started by the specs unless DYNAMODB_ENDPOINT is set), the OpenResty example in
# nginx, and the conformance suite (AuthHero's own server on the adapters); one closing line
# counts them all.
test: deps-full
	@$(MAKE) --no-print-directory build-all
	@rm -rf $(STATS); mkdir -p $(STATS)
	@scripts/run-busted $(STATS)/unit-5.4 --lua=$(LUA) --cpath='build/5.4/?.so' $(SPECS_UNIT) || true
	@scripts/run-busted $(STATS)/unit-jit --lua=luajit --cpath='build/jit/?.so' $(SPECS_UNIT) || true
	@for v in $(LUAS_MORE); do \
	    scripts/run-busted $(STATS)/unit-$$v --lua=lua$$v --cpath="build/$$v/?.so" $(SPECS_UNIT) || true; done
	@if scripts/fuzz 20; then echo "1 0" > $(STATS)/fuzz; else echo "0 1" > $(STATS)/fuzz; fi
	@scripts/run-busted $(STATS)/integ-5.4 --lua=$(LUA) --cpath='build/5.4/?.so' $(SPECS_INTEG) || true
	@scripts/openresty-test --stats $(STATS)/openresty || true
	@scripts/conformance --stats $(STATS)/conformance || true
	@scripts/summary $(STATS)

unit: build
	$(BUSTED) --lua=$(LUA) --cpath='build/5.4/?.so' $(SPECS_UNIT)

integration: deps-full build
	$(BUSTED) --lua=$(LUA) --cpath='build/5.4/?.so' $(SPECS_INTEG)

compat: deps jit $(SOMORE)
	$(BUSTED) --lua=luajit --cpath='build/jit/?.so' $(SPECS_UNIT)
	@set -e; for v in $(LUAS_MORE); do echo "== Lua $$v"; \
	    $(BUSTED) --lua=lua$$v --cpath="build/$$v/?.so" $(SPECS_UNIT); done

# Sanitizers: ASan + UBSan, no recovery; leaks are valgrind's job.
asan: deps
	@rm -rf build/asan
	$(MAKE) --no-print-directory SO54=build/asan/authhero/aws/core.so OPT='-O1 -g' \
	    CFLAGS_X='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all' \
	    LDFLAGS_X='-fsanitize=address,undefined' build/asan/authhero/aws/core.so
	LD_PRELOAD=$$($(CC) -print-file-name=libasan.so):$$($(CC) -print-file-name=libubsan.so) \
	ASAN_OPTIONS=detect_leaks=0 $(BUSTED) --lua=$(LUA) --cpath='build/asan/?.so' $(SPECS_UNIT)

valgrind: deps
	@rm -rf build/vg
	$(MAKE) --no-print-directory SO54=build/vg/authhero/aws/core.so OPT='-O0 -g' build/vg/authhero/aws/core.so
	valgrind -q --keep-debuginfo=yes --leak-check=full --errors-for-leak-kinds=definite \
	    --error-exitcode=1 $(LUA) /usr/bin/busted --cpath='build/vg/?.so' $(SPECS_UNIT)

FUZZ_SECONDS ?= 120
fuzz: deps
	@scripts/fuzz $(FUZZ_SECONDS)

fuzz-ci: deps
	@scripts/fuzz 20

demo: deps-full build
	@scripts/demo

# Issue 12's fault run: 600 of each kind through a fault-injecting proxy (README "Under faults").
fault-run: deps-full build
	@scripts/fault-run

bench: deps-full build
	$(LUA) bench/codec.lua
	BENCH_CPATH='build/jit/?.so' luajit bench/codec.lua
	$(LUA) bench/sigv4.lua
	$(LUA) bench/safe.lua
	$(LUA) bench/cache.lua
	scripts/bench-client
	scripts/bench-cost
	scripts/bench-openresty
	scripts/bench-cache-openresty
	scripts/bench-import

lint: deps
	luacheck lua spec bench examples bin/authhero-dynamo
	scripts/check-rockspec
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability csrc/

format:
	clang-format -i csrc/*.c csrc/*.h

format-check:
	clang-format --dry-run -Werror csrc/*.c csrc/*.h

check-rockspec:
	@scripts/check-rockspec

# Generated files: docs/data-model.md from the entity registry (spec/unit/data_model_spec.lua fails
# when it is stale) and the rockspec's list of Lua modules (make lint fails when it is stale).
docs: build
	@LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' $(LUA) scripts/data_model.lua
	@scripts/check-rockspec --write

clean:
	rm -rf build

# AuthHero's own server (authhero 9.6.1) on these Lua adapters against DynamoDB Local
# (scripts/conformance: installs what it needs, prints MISSING methods and schema violations);
# also the last part of `make test`.
.PHONY: conformance
conformance:
	@scripts/conformance
