/*
 * core_alloc.h - the broker core's allocator: every allocation of the core
 * goes through here so that tests can make any one fail and check that the
 * broker stays consistent. Memory is released with plain free().
 */
#ifndef FERRY_CORE_ALLOC_H
#define FERRY_CORE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* malloc and calloc, unless the test hook below says to fail. */
void *core_malloc(size_t size);
void *core_calloc(size_t count, size_t size);

/* Test hook, NULL in the daemon: called before each allocation; when it
 * returns true the allocation fails as if memory were exhausted. */
extern bool (*core_alloc_should_fail)(void);

#endif
