/* fuzz_manifest.c - set_parse_manifest() on arbitrary manifest.json text, in
 * a set folder and at the container's root.
 *
 * Checks: a manifest that parses names only what restore and verify may
 * act on: a database name MongoDB takes; collection names MongoDB takes,
 * each once; data and metadata blobs inside the set's folder, with no
 * empty, "." or ".." segment.  A manifest that does not parse leaves
 * nothing loaded, says why, and says it in one line.
 */
#include "config.h"

#include <stdbool.h>

#include "backup_set.h"
#include "fuzz.h"

static void parse_in(const char *folder, const char *json)
{
	struct set_list l = { calloc(1, sizeof(struct backup_set)), 1 };
	struct backup_set *s = l.sets;
	char err[512], why[256];

	FUZZ_CHECK(s != NULL && (s->folder = strdup(folder)) != NULL, "out of memory");
	err[0] = '\0';
	if (set_parse_manifest(s, json, strlen(json), err, sizeof(err)) != 0) {
		FUZZ_CHECK(err[0] != '\0', "failed without a message");
		FUZZ_CHECK(strchr(err, '\n') == NULL, "a message of several lines: %s", err);
		FUZZ_CHECK(!s->loaded && s->n_colls == 0 && s->database == NULL,
			   "a failed parse left a manifest behind");
		sets_free(&l);
		return;
	}
	FUZZ_CHECK(s->loaded, "parsed but not loaded");
	FUZZ_CHECK(s->database == NULL || set_valid_database(s->database, why, sizeof(why)),
		   "database: %s", why);
	for (size_t i = 0; i < s->n_colls; i++) {
		const struct set_coll *c = &s->colls[i];

		bool view = strcmp(c->type, "view") == 0;
		bool auth = strcmp(c->type, "users") == 0 || strcmp(c->type, "roles") == 0;
		FUZZ_CHECK(c->name != NULL && c->database != NULL && c->result != NULL &&
			   (view || c->blob != NULL), "entry %zu lacks a field", i);
		FUZZ_CHECK(set_valid_database(c->database, why, sizeof(why)), "entry %zu: %s", i, why);
		FUZZ_CHECK(auth || set_valid_collection(c->database, c->name, why, sizeof(why)),
			   "entry %zu: %s", i, why);
		if (view) {
			FUZZ_CHECK(c->blob == NULL && c->metadata_blob != NULL, "entry %zu: a view "
				   "with data or without a definition", i);
			continue;
		}
		FUZZ_CHECK(set_blob_in_folder(folder, c->blob, why, sizeof(why)),
			   "entry %zu: blob '%s': %s", i, c->blob, why);
		FUZZ_CHECK(c->metadata_blob == NULL ||
			   set_blob_in_folder(folder, c->metadata_blob, why, sizeof(why)),
			   "entry %zu: metadata blob '%s': %s", i, c->metadata_blob, why);
		FUZZ_CHECK(strncmp(c->blob, folder, strlen(folder)) == 0, "blob outside");
		FUZZ_CHECK(strstr(c->blob, "/../") == NULL && strncmp(c->blob, "../", 3) != 0,
			   "a '..' passed: %s", c->blob);
		/* One name may stand in several databases, never twice in one. */
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(s->colls[j].name, c->name) != 0 ||
				   strcmp(s->colls[j].database, c->database) != 0,
				   "'%s.%s' twice", c->database, c->name);
	}
	FUZZ_CHECK(set_count_ok(s) <= s->n_colls, "count");
	sets_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json;

	if (size > 256 * 1024)
		return 0;
	json = fuzz_cstr(data, size);
	parse_in("backups/2026-11-27/", json);
	parse_in("", json);
	free(json);
	return 0;
}
