/* replay.c - main() for a fuzz target outside libFuzzer: runs every input
 * through LLVMFuzzerTestOneInput() once.
 *
 *   replay-NAME [FILE|DIR]...
 *
 * Without arguments (as make check runs it): the seed corpus
 * tests/fuzz/corpus/NAME/ and the regression inputs tests/fuzz/regressions/NAME/
 * under $MAB_SRCDIR (default: the source tree it was built from).  A
 * directory means every regular file in it, in name order.  Each input's
 * name is printed before it runs, so a crash names its input.  Exit 0 when
 * all ran; a failed check or a sanitizer report ends the program.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET (the target's name) must be defined"
#endif
#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

/* Optional in a target, as with libFuzzer. */
#pragma weak LLVMFuzzerInitialize

static size_t n_inputs;

static int run_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "replay-%s: %s: %s\n", FUZZ_TARGET, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Exactly the input's size: reading one byte past it is a finding. */
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL) {
		fprintf(stderr, "replay-%s: %s: out of memory\n", FUZZ_TARGET, path);
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	fprintf(stderr, "replay-%s: %s (%zu bytes)\n", FUZZ_TARGET, path, got);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	n_inputs++;
	return 0;
}

static int only_files(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Every file in dir; a missing dir is an error only when required. */
static int run_dir(const char *dir, bool required)
{
	struct dirent **names;
	int n = scandir(dir, &names, only_files, alphasort);
	int rc = 0;

	if (n < 0) {
		if (!required && errno == ENOENT)
			return 0;
		fprintf(stderr, "replay-%s: %s: %s\n", FUZZ_TARGET, dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && run_file(path) != 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int run_arg(const char *arg)
{
	struct stat st;

	if (stat(arg, &st) != 0) {
		fprintf(stderr, "replay-%s: %s: %s\n", FUZZ_TARGET, arg, strerror(errno));
		return -1;
	}
	return S_ISDIR(st.st_mode) ? run_dir(arg, true) : run_file(arg);
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (run_arg(argv[i]) != 0)
				rc = 1;
	} else {
		const char *srcdir = getenv("MAB_SRCDIR");
		char corpus[4096], regressions[4096];

		if (srcdir == NULL || *srcdir == '\0')
			srcdir = FUZZ_SRCDIR;
		snprintf(corpus, sizeof(corpus), "%s/tests/fuzz/corpus/%s", srcdir, FUZZ_TARGET);
		snprintf(regressions, sizeof(regressions), "%s/tests/fuzz/regressions/%s", srcdir,
			 FUZZ_TARGET);
		if (run_dir(corpus, true) != 0 || run_dir(regressions, false) != 0)
			rc = 1;
		if (n_inputs == 0) {
			fprintf(stderr, "replay-%s: no inputs in %s\n", FUZZ_TARGET, corpus);
			rc = 1;
		}
	}
	fprintf(stderr, "replay-%s: %zu inputs, %s\n", FUZZ_TARGET, n_inputs,
		rc == 0 ? "all passed" : "ERRORS");
	/* A hard error (missing corpus) is not a failed test case. */
	return rc == 0 ? 0 : 99;
}
