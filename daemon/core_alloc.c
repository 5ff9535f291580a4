/*
 * core_alloc.c - the core's allocator with its failure-injection hook.
 * Knows nothing of what is allocated.
 */
#include "core_alloc.h"

#include <stdlib.h>

bool (*core_alloc_should_fail)(void) = NULL;

void *core_malloc(size_t size)
{
    if (core_alloc_should_fail != NULL && core_alloc_should_fail())
        return NULL;
    return malloc(size);
}

void *core_calloc(size_t count, size_t size)
{
    if (core_alloc_should_fail != NULL && core_alloc_should_fail())
        return NULL;
    return calloc(count, size);
}
