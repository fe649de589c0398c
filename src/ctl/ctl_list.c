/* ctl_list.c - `mongo-azure-backupctl list [--json]`: the backup sets in
 * the container, newest first, from their manifests and verification
 * records.  Needs no daemon, only read access to the container.
 */
#include "config.h"

#include <bson/bson.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_commands.h"
#include "ctl_common.h"

struct totals {
	uint64_t documents, bson_bytes, gzip_bytes;
	size_t ok;
};

static void sum(const struct backup_set *s, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < s->n_colls; i++) {
		const struct set_coll *c = &s->colls[i];
		if (strcmp(c->result, "ok") != 0)
			continue;
		t->ok++;
		t->documents += c->documents > 0 ? (uint64_t)c->documents : 0;
		t->bson_bytes += c->bson_bytes > 0 ? (uint64_t)c->bson_bytes : 0;
		t->gzip_bytes += c->gzip_bytes > 0 ? (uint64_t)c->gzip_bytes : 0;
	}
}

static const char *state_word(const struct backup_set *s)
{
	if (!s->loaded)
		return "unreadable";
	return s->complete ? "complete" : "INCOMPLETE";
}

static int print_json(const struct ctl_store *st, const struct set_list *l)
{
	bson_t doc = BSON_INITIALIZER, arr;
	char *json;

	BSON_APPEND_UTF8(&doc, "container", st->client->container);
	BSON_APPEND_ARRAY_BEGIN(&doc, "sets", &arr);
	for (size_t i = 0; i < l->n; i++) {
		const struct backup_set *s = &l->sets[i];
		struct totals t;
		char key[16];
		const char *keyp;
		bson_t e;

		sum(s, &t);
		bson_uint32_to_string((uint32_t)i, &keyp, key, sizeof(key));
		BSON_APPEND_DOCUMENT_BEGIN(&arr, keyp, &e);
		BSON_APPEND_UTF8(&e, "set", s->folder);
		if (!s->loaded) {
			BSON_APPEND_BOOL(&e, "complete", false);
			BSON_APPEND_UTF8(&e, "error", s->load_error ? s->load_error : "unreadable");
		} else {
			BSON_APPEND_BOOL(&e, "complete", s->complete);
			if (s->database != NULL)
				BSON_APPEND_UTF8(&e, "database", s->database);
			bson_t dbs;
			uint32_t nd = 0;
			BSON_APPEND_ARRAY_BEGIN(&e, "databases", &dbs);
			for (size_t k = 0; k < s->n_colls; k++) {
				bool seen = false;
				for (size_t m = 0; m < k && !seen; m++)
					seen = strcmp(s->colls[m].database, s->colls[k].database) == 0;
				if (seen)
					continue;
				char dk[16];
				const char *dkp;
				bson_uint32_to_string(nd++, &dkp, dk, sizeof(dk));
				BSON_APPEND_UTF8(&dbs, dkp, s->colls[k].database);
			}
			bson_append_array_end(&e, &dbs);
			if (s->run_id)
				BSON_APPEND_UTF8(&e, "run_id", s->run_id);
			if (s->started)
				BSON_APPEND_UTF8(&e, "started", s->started);
			if (s->finished)
				BSON_APPEND_UTF8(&e, "finished", s->finished);
			else
				BSON_APPEND_NULL(&e, "finished");
			BSON_APPEND_INT64(&e, "collections", (int64_t)s->n_colls);
			BSON_APPEND_INT64(&e, "collections_ok", (int64_t)t.ok);
			BSON_APPEND_INT64(&e, "documents", (int64_t)t.documents);
			BSON_APPEND_INT64(&e, "bson_bytes", (int64_t)t.bson_bytes);
			BSON_APPEND_INT64(&e, "gzip_bytes", (int64_t)t.gzip_bytes);
		}
		if (s->verified_at) {
			BSON_APPEND_UTF8(&e, "verified_at", s->verified_at);
			BSON_APPEND_UTF8(&e, "verification", s->verify_result ? s->verify_result : "?");
		} else {
			BSON_APPEND_NULL(&e, "verified_at");
			BSON_APPEND_NULL(&e, "verification");
		}
		bson_append_document_end(&arr, &e);
	}
	bson_append_array_end(&doc, &arr);
	json = bson_as_relaxed_extended_json(&doc, NULL);
	bson_destroy(&doc);
	if (json == NULL) {
		ctl_err("cannot encode the list as JSON");
		return CTL_FAILED;
	}
	puts(json);
	bson_free(json);
	return CTL_OK;
}

/* Column widths grow to the longest folder name; the rest are fixed. */
static void print_table(const struct ctl_store *st, const struct set_list *l)
{
	int w = 3;
	size_t unreadable = 0;
	char a[512], b[64], c[64], d[64], e[64], why[1024];

	for (size_t i = 0; i < l->n; i++) {
		int n = (int)strlen(l->sets[i].folder);
		if (n > w)
			w = n > 200 ? 200 : n;
	}
	printf("container %s: %zu backup set%s, newest first\n",
	       ctl_clean(st->client->container, a, sizeof(a)), l->n, l->n == 1 ? "" : "s");
	if (l->n == 0)
		return;
	printf("%-*s  %-19s  %-10s  %-11s  %13s  %9s  %s\n", w, "SET", "STARTED (UTC)", "STATE",
	       "COLLECTIONS", "DOCUMENTS", "GZIP", "VERIFIED (UTC)");
	for (size_t i = 0; i < l->n; i++) {
		const struct backup_set *s = &l->sets[i];
		struct totals t;
		char colls[32], docs[32], verified[128];

		sum(s, &t);
		if (s->loaded) {
			snprintf(colls, sizeof(colls), "%zu/%zu", t.ok, s->n_colls);
			snprintf(docs, sizeof(docs), "%llu", (unsigned long long)t.documents);
			ctl_bytes(t.gzip_bytes, c, sizeof(c));
		} else {
			unreadable++;
			snprintf(colls, sizeof(colls), "-");
			snprintf(docs, sizeof(docs), "-");
			snprintf(c, sizeof(c), "-");
		}
		if (s->verified_at)
			snprintf(verified, sizeof(verified), "%s %s",
				 ctl_when(s->verified_at, d, sizeof(d)),
				 ctl_clean(s->verify_result ? s->verify_result : "?", e, sizeof(e)));
		else
			snprintf(verified, sizeof(verified), "never");
		printf("%-*s  %-19s  %-10s  %-11s  %13s  %9s  %s\n", w,
		       ctl_clean(s->folder[0] ? s->folder : "/", a, sizeof(a)),
		       ctl_when(s->loaded ? s->started : NULL, b, sizeof(b)), state_word(s), colls,
		       docs, c, verified);
	}
	if (unreadable == 0)
		return;
	putchar('\n');
	for (size_t i = 0; i < l->n; i++)
		if (!l->sets[i].loaded)
			printf("%s: %s\n", ctl_clean(l->sets[i].folder, a, sizeof(a)),
			       ctl_clean(l->sets[i].load_error, why, sizeof(why)));
}

int ctl_list(const char *conf_path, bool conf_explicit, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_store st;
	struct set_list l = { 0 };
	struct azure_error err;
	bool json = false;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h':
			printf("Usage: " CTL_PROG " [-c CONF] list [--json]\n"
			       "The backup sets in the container, newest first.\n");
			return CTL_OK;
		default: return ctl_usage_hint();
		}
	}
	if (optind < argc)
		return ctl_usage_error("list: unexpected argument '%s'", argv[optind]);
	r = ctl_store_open(&st, conf_path, conf_explicit);
	if (r != CTL_OK)
		goto out;
	if (sets_scan(st.client, &l, &err) != 0) {
		ctl_err("cannot list container '%s' at %s: %s", st.client->container,
			azure_client_endpoint(st.client), err.message);
		r = CTL_FAILED;
		goto out;
	}
	sets_load_all(st.client, &l);
	r = json ? print_json(&st, &l) : (print_table(&st, &l), CTL_OK);
	if (fflush(stdout) != 0 && r == CTL_OK)
		r = CTL_FAILED;
out:
	sets_free(&l);
	ctl_store_close(&st);
	return r;
}
