/* fuzz_config.c - config_load() on arbitrary file contents.
 *
 * The input is written to a memfd and loaded through /proc/self/fd/N, the
 * way the daemon's children load the text it accepted.  Checks: every
 * problem is one "PATH:LINE: message" line; a configuration without problems
 * holds what config_load promises; and the value of connection_string or
 * [mongodb] uri (secrets) never shows up in a message.
 */
#include "config.h"

#include <stdbool.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "gzip_engine.h"
#include "mab_config.h"

struct reports {
	const char *path;
	size_t n;
	char *all;		/* every message, newline-separated */
	size_t len;
};

static void collect(void *ctx, const char *message)
{
	struct reports *r = ctx;
	size_t plen = strlen(r->path), mlen = strlen(message);
	char *grown;

	FUZZ_CHECK(strncmp(message, r->path, plen) == 0 && message[plen] == ':',
		   "message does not start with the path: %s", message);
	FUZZ_CHECK(strchr(message, '\n') == NULL, "message spans lines: %s", message);
	grown = realloc(r->all, r->len + mlen + 2);
	if (grown == NULL)
		abort();
	r->all = grown;
	memcpy(r->all + r->len, message, mlen);
	r->len += mlen;
	r->all[r->len++] = '\n';
	r->all[r->len] = '\0';
	r->n++;
}

/* Where the value of the first "key = value" line for key (not indented)
 * is, as inih hands it over (trimmed, an inline " ;comment" removed): false
 * when there is none. */
static bool value_of(const char *text, const char *key, size_t *off, size_t *len)
{
	size_t klen = strlen(key);

	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *end = strchr(line, '\n');
		const char *lend = end != NULL ? end : line + strlen(line);
		const char *p = line;

		/* An indented line continues the previous key's value. */
		if ((size_t)(lend - p) > klen && strncasecmp(p, key, klen) == 0) {
			const char *q = p + klen;
			while (q < lend && (*q == ' ' || *q == '\t'))
				q++;
			if (q < lend && (*q == '=' || *q == ':')) {
				const char *v = q + 1, *vend = lend;
				for (const char *c = v; c < vend; c++)
					if (*c == ';' && c > v && (c[-1] == ' ' || c[-1] == '\t')) {
						vend = c;
						break;
					}
				while (v < vend && (*v == ' ' || *v == '\t'))
					v++;
				while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t' ||
						    vend[-1] == '\r'))
					vend--;
				*off = (size_t)(v - text);
				*len = (size_t)(vend - v);
				return true;
			}
		}
		line = end != NULL ? end + 1 : NULL;
	}
	return false;
}

static int load(const char *text, size_t size, struct mab_config *cfg, struct reports *r,
		char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC), problems;

	if (fd < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, text + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	r->path = path;
	problems = config_load(path, cfg, collect, r);
	close(fd);
	return problems;
}

/* A secret must not show up in a message: the value of key is replaced by
 * a marker of the same length that appears nowhere else, and the file is
 * loaded again. */
static void check_secret(const char *text, const char *key)
{
	static const char pattern[] = "Zq7Xw";
	struct mab_config cfg;
	struct reports r = { 0 };
	char path[64], *copy, *marker;
	size_t off, len, size = strlen(text);

	if (!value_of(text, key, &off, &len) || len < 8)
		return;
	copy = strdup(text);
	marker = malloc(len + 1);
	if (copy == NULL || marker == NULL)
		abort();
	for (size_t i = 0; i < len; i++)
		marker[i] = pattern[i % (sizeof(pattern) - 1)];
	marker[len] = '\0';
	memcpy(copy + off, marker, len);
	if (fuzz_count(copy, marker) == 1) {
		load(copy, size, &cfg, &r, path, sizeof(path));
		FUZZ_CHECK(r.all == NULL || strstr(r.all, marker) == NULL,
			   "the %s value is in a message:\n%s", key, r.all);
		config_free(&cfg);
	}
	free(r.all);
	free(marker);
	free(copy);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mab_config cfg;
	struct reports r = { 0 };
	char path[64];
	int problems;

	if (size > 64 * 1024)
		return 0;
	problems = load((const char *)data, size, &cfg, &r, path, sizeof(path));

	FUZZ_CHECK(problems >= 0 && (size_t)problems == r.n, "%d problems, %zu messages",
		   problems, r.n);
	FUZZ_CHECK(cfg.text_len == size && (size == 0 || memcmp(cfg.text, data, size) == 0),
		   "the text kept is not the file");
	if (problems == 0) {
		FUZZ_CHECK(cfg.cron != NULL && *cfg.cron != '\0', "no cron");
		FUZZ_CHECK(cfg.container != NULL && strlen(cfg.container) >= 3 &&
			   strlen(cfg.container) <= 63, "bad container accepted");
		FUZZ_CHECK(cfg.all_databases || cfg.n_scopes > 0, "nothing to back up");
		for (size_t i = 0; i < cfg.n_scopes; i++)
			FUZZ_CHECK(cfg.scopes[i].collections.all || cfg.scopes[i].collections.n > 0,
				   "no collections in %s", cfg.scopes[i].database);
		FUZZ_CHECK(cfg.collections.names != NULL &&
			   cfg.collections.names[cfg.collections.n] == NULL,
			   "collections not NULL-terminated");
		FUZZ_CHECK(cfg.parallel >= 1 && cfg.parallel <= 256, "parallel %d", cfg.parallel);
		int lmin, lmax, ldflt;
		FUZZ_CHECK(gzip_engine_built_in(cfg.compression_engine), "engine %d",
			   cfg.compression_engine);
		gzip_engine_levels(cfg.compression_engine, &lmin, &lmax, &ldflt);
		FUZZ_CHECK(cfg.compression_level >= lmin && cfg.compression_level <= lmax,
			   "level %d", cfg.compression_level);
		FUZZ_CHECK(cfg.compression_threads >= 0 &&
			   cfg.compression_threads <= GZIP_THREADS_MAX, "threads %d",
			   cfg.compression_threads);
		FUZZ_CHECK(!(*cfg.connection_string && *cfg.connection_string_file),
			   "both connection string sources accepted");
	}
	config_free(&cfg);
	free(r.all);

	if (memchr(data, '\0', size) == NULL) {
		char *text = fuzz_cstr(data, size);
		check_secret(text, "connection_string");
		check_secret(text, "uri");
		free(text);
	}
	return 0;
}
