/* ctl_common.c - configuration, client and set lookup for list, verify and
 * restore; small formatting helpers.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "blob_tool.h"
#include "ctl_common.h"
#include "log.h"

void ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs(CTL_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(CTL_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" CTL_PROG " --help'.\n", stderr);
	return CTL_USAGE;
}

int ctl_usage_hint(void)
{
	fputs("Try '" CTL_PROG " --help'.\n", stderr);
	return CTL_USAGE;
}

static void print_problem(void *ctx, const char *message)
{
	(void)ctx;
	ctl_err("%s", message);
}

int ctl_store_open(struct ctl_store *st, const char *conf_path, bool conf_explicit)
{
	char err[512];

	memset(st, 0, sizeof(*st));
	st->conf_path = conf_path;
	st->conf_explicit = conf_explicit;
	if (!conf_explicit && access(conf_path, F_OK) != 0 && errno == ENOENT) {
		config_defaults(&st->cfg);
	} else {
		st->conf_read = true;
		if (config_load(conf_path, &st->cfg, print_problem, NULL) != 0) {
			st->have_cfg = true;
			ctl_err("%s: unusable configuration (check it with "
				"mongo-azure-backupd -t -c %s)", conf_path, conf_path);
			return CTL_USAGE;
		}
	}
	st->have_cfg = true;
	/* An interactive tool: messages to the terminal whatever [log] says. */
	log_open(CTL_PROG, LOG_TARGET_STDERR, st->cfg.log_level);

	st->client = azure_client_from_config(&st->cfg, NULL, err, sizeof(err));
	if (st->client == NULL) {
		ctl_err("%s", err);
		return CTL_USAGE;
	}
	return CTL_OK;
}

void ctl_store_close(struct ctl_store *st)
{
	azure_client_free(st->client);
	st->client = NULL;
	if (st->have_cfg)
		config_free(&st->cfg);
	st->have_cfg = false;
}

int ctl_pick_set(struct ctl_store *st, const char *name, bool only_complete, bool load_all,
		 struct set_list *l, long *idx)
{
	struct azure_error err;
	char why[1024];

	if (sets_scan(st->client, l, &err) != 0) {
		ctl_err("cannot list container '%s' at %s: %s", st->client->container,
			azure_client_endpoint(st->client), err.message);
		return CTL_FAILED;
	}
	/* "latest" needs every manifest to know which is newest. */
	if (load_all || strcmp(name, "latest") == 0)
		sets_load_all(st->client, l);
	*idx = sets_resolve(l, name, only_complete, why, sizeof(why));
	if (*idx < 0) {
		ctl_err("%s in container '%s'%s", why, st->client->container,
			l->n == 0 ? " (it holds no backup sets)" : "");
		return CTL_FAILED;
	}
	/* "latest" passes over a newer set whose manifest is unusable (a
	 * hostile one among them): say so, or an older backup would be taken
	 * without a word. */
	if (!load_all && strcmp(name, "latest") == 0)
		for (long i = 0; i < *idx; i++) {
			char what[1024];
			if (l->sets[i].loaded || l->sets[i].load_error == NULL)
				continue;
			ctl_err("warning: passing over %s: %s",
				ctl_clean(l->sets[i].folder, why, sizeof(why)),
				ctl_clean(l->sets[i].load_error, what, sizeof(what)));
		}
	if (!l->sets[*idx].loaded && l->sets[*idx].load_error == NULL)
		set_load(st->client, &l->sets[*idx]);
	return CTL_OK;
}

const char *ctl_clean(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (s == NULL)
		s = "";
	for (; *s && n + 1 < len; s++)
		buf[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	buf[n] = '\0';
	return buf;
}

const char *ctl_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1000 && u < 5) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

const char *ctl_when(const char *iso, char *buf, size_t len)
{
	if (iso == NULL || *iso == '\0') {
		snprintf(buf, len, "-");
		return buf;
	}
	ctl_clean(iso, buf, len);
	/* "2026-11-27T03:00:00Z" reads better as "2026-11-27 03:00:00". */
	if (strlen(buf) == 20 && buf[10] == 'T' && buf[19] == 'Z') {
		buf[10] = ' ';
		buf[19] = '\0';
	}
	return buf;
}

int ctl_tty_width(void)
{
	struct winsize ws;

	if (isatty(STDOUT_FILENO) != 1)
		return 0;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}
