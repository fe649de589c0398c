/* fuzz.h - shared by the fuzz targets in tests/fuzz/ and their replay driver.
 *
 * Each target is one C file defining LLVMFuzzerTestOneInput().  Built with
 * clang -fsanitize=fuzzer it is a libFuzzer binary (tests/fuzz/fuzz-NAME,
 * --enable-fuzzers); linked with replay.c it is a plain program that feeds
 * the seed corpus and the regression inputs through the same entry point
 * (tests/fuzz/replay-NAME, part of make check with any compiler).
 *
 * A target checks what the code promises, not only that it does not crash:
 * FUZZ_CHECK() aborts, which both builds report as a failure.
 */
#ifndef MAB_FUZZ_H
#define MAB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: called once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,  \
				__LINE__, #cond);                               \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			abort();                                                \
		}                                                               \
	} while (0)

/* The input as a NUL-terminated string (cut at its first NUL), malloc'd. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Occurrences of needle (non-empty) in haystack, overlapping ones included. */
static inline size_t fuzz_count(const char *haystack, const char *needle)
{
	size_t n = 0;

	for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#endif
