/* ctl_verify.c - `mongo-azure-backupctl verify [--no-record] [SET|latest|all]`.
 *
 * Streams every blob of the set(s) through set_verify.h's checks, prints a
 * verdict per collection, and records the result in SET/verification.json
 * (unless --no-record, for read-only credentials).  Exit 0 only when every
 * set verified was complete and intact.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_commands.h"
#include "ctl_common.h"
#include "set_verify.h"

struct view {
	int tty;                  /* terminal width, 0 when not a terminal */
	bool drawn;               /* a progress line is on screen */
};

static void clear_line(struct view *v)
{
	if (v->drawn) {
		fputs("\r\033[2K", stdout);
		v->drawn = false;
	}
}

static void on_begin(void *ctx, const struct set_coll *c, size_t i, size_t n)
{
	struct view *v = ctx;
	char a[128];

	if (!v->tty)
		return;
	clear_line(v);
	printf("  %-16s checking (%zu of %zu)", ctl_clean(c->label, a, sizeof(a)), i + 1, n);
	v->drawn = true;
	fflush(stdout);
}

static void on_progress(void *ctx, const struct set_coll *c, uint64_t gzip_done,
			uint64_t documents)
{
	struct view *v = ctx;
	char a[128], b[32], line[256];

	if (!v->tty)
		return;
	snprintf(line, sizeof(line), "  %-16s checking  %s", ctl_clean(c->label, a, sizeof(a)),
		 ctl_bytes(gzip_done, b, sizeof(b)));
	if (c->gzip_bytes > 0)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), " of %s (%d%%)",
			 ctl_bytes((uint64_t)c->gzip_bytes, b, sizeof(b)),
			 (int)(100.0 * (double)gzip_done / (double)c->gzip_bytes));
	snprintf(line + strlen(line), sizeof(line) - strlen(line), ", %llu documents",
		 (unsigned long long)documents);
	if ((int)strlen(line) >= v->tty)
		line[v->tty - 1] = '\0';
	clear_line(v);
	fputs(line, stdout);
	v->drawn = true;
	fflush(stdout);
}

static void on_done(void *ctx, const struct coll_verdict *cv)
{
	struct view *v = ctx;
	char a[128], b[32], word[16], why[2048];

	clear_line(v);
	snprintf(word, sizeof(word), "%s", cv->result);
	if (strcmp(word, "ok") != 0)
		for (char *p = word; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	printf("  %-16s %-10s ", ctl_clean(cv->label, a, sizeof(a)), word);
	if (strcmp(cv->result, "ok") == 0) {
		printf("%llu document%s, %s gzip", (unsigned long long)cv->documents,
		       cv->documents == 1 ? "" : "s", ctl_bytes(cv->gzip_bytes, b, sizeof(b)));
		if (cv->indexes >= 0)
			printf(", %d index%s", cv->indexes, cv->indexes == 1 ? "" : "es");
	} else {
		fputs(ctl_clean(cv->problem, why, sizeof(why)), stdout);
	}
	putchar('\n');
	fflush(stdout);
}

static int verify_one(struct ctl_store *st, struct backup_set *s, bool record, struct view *v)
{
	struct set_verify_hooks hooks = { on_begin, on_progress, on_done, v };
	struct set_verdict verdict;
	struct azure_error err;
	char a[512], b[1024], c[64];
	size_t bad = 0;
	int r;

	printf("verifying %s", ctl_clean(s->folder[0] ? s->folder : "/", a, sizeof(a)));
	if (s->loaded)
		printf(" (database %s, started %s, %s)",
		       ctl_clean(s->database ? s->database : "(several)", b, sizeof(b)),
		       ctl_when(s->started, c, sizeof(c)),
		       s->complete ? "complete" : "INCOMPLETE");
	putchar('\n');
	fflush(stdout);

	r = set_verify(st->client, s, &hooks, &verdict) == 0 ? CTL_OK : CTL_FAILED;
	for (size_t i = 0; i < verdict.n; i++)
		if (strcmp(verdict.colls[i].result, "ok") != 0)
			bad++;
	if (verdict.problem[0])
		printf("  %s\n", ctl_clean(verdict.problem, b, sizeof(b)));
	printf("%s: %s", ctl_clean(s->folder[0] ? s->folder : "/", a, sizeof(a)),
	       strcmp(verdict.result, "ok") == 0 ? "ok" :
	       strcmp(verdict.result, "incomplete") == 0 ? "INCOMPLETE" :
	       strcmp(verdict.result, "error") == 0 ? "NOT VERIFIED (errors)" : "FAILED");
	if (bad > 0)
		printf(" (%zu of %zu collection%s not ok)", bad, verdict.n, verdict.n == 1 ? "" : "s");
	printf(" in %.1f s", verdict.seconds);
	if (record) {
		if (set_verdict_record(st->client, s, &verdict, &err) == 0) {
			printf("; recorded in %s%s\n", a[0] == '/' ? "" : a, SET_VERIFICATION);
		} else {
			putchar('\n');
			ctl_err("warning: cannot record the result in %s%s: %s", a, SET_VERIFICATION,
				err.message);
		}
	} else {
		putchar('\n');
	}
	fflush(stdout);
	set_verdict_free(&verdict);
	return r;
}

int ctl_verify(const char *conf_path, bool conf_explicit, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-record", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_store st;
	struct set_list l = { 0 };
	struct view v = { .tty = ctl_tty_width() };
	const char *name = "latest";
	bool record = true, all;
	long idx;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': record = false; break;
		case 'h':
			printf("Usage: " CTL_PROG " [-c CONF] verify [--no-record] [SET|latest|all]\n"
			       "Streams every blob of the set (default: the newest complete one) and\n"
			       "checks it against the manifest; records the result in SET/%s.\n",
			       SET_VERIFICATION);
			return CTL_OK;
		default: return ctl_usage_hint();
		}
	}
	if (optind + 1 < argc)
		return ctl_usage_error("verify: unexpected argument '%s'", argv[optind + 1]);
	if (optind < argc)
		name = argv[optind];
	all = strcmp(name, "all") == 0;

	r = ctl_store_open(&st, conf_path, conf_explicit);
	if (r != CTL_OK)
		goto out;
	/* "latest" is the newest complete set, as for restore: the backup an
	 * operator would bring back. */
	r = ctl_pick_set(&st, all ? "latest" : name, !all, all, &l, &idx);
	if (r != CTL_OK)
		goto out;
	if (!all) {
		r = verify_one(&st, &l.sets[idx], record, &v);
		goto out;
	}
	size_t failed = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (i > 0)
			putchar('\n');
		if (verify_one(&st, &l.sets[i], record, &v) != CTL_OK)
			failed++;
	}
	printf("\n%zu of %zu backup set%s verified ok\n", l.n - failed, l.n, l.n == 1 ? "" : "s");
	r = failed == 0 ? CTL_OK : CTL_FAILED;
out:
	if (fflush(stdout) != 0 && r == CTL_OK)
		r = CTL_FAILED;
	sets_free(&l);
	ctl_store_close(&st);
	return r;
}
