/* check_manifest.c - manifest.json as written at the start and the end. */
#include "config.h"

#include <bson/bson.h>
#include <check.h>
#include <string.h>

#include "backup_run.h"
#include "manifest.h"
#include "unit_suites.h"

static void fake_run(struct backup_run *run, struct mab_config *cfg,
		     struct collection_job *jobs)
{
	memset(run, 0, sizeof(*run));
	memset(jobs, 0, 2 * sizeof(*jobs));
	config_defaults(cfg);
	run->cfg = cfg;
	run->start = 1795662007;
	run->finish_wall = 1795662107.5;
	snprintf(run->run_id, sizeof(run->run_id), "20261126T030007Z-1");
	snprintf(run->set_folder, sizeof(run->set_folder), "backups/2026-11-26/");
	jobs[0].database = jobs[1].database = "tralivali";
	jobs[0].name = "users";
	snprintf(jobs[0].blob, sizeof(jobs[0].blob), "backups/2026-11-26/tralivali_users.bson.gz");
	jobs[0].state = JOB_DONE;
	jobs[0].documents = 300000;
	jobs[0].bson_bytes = 5000000000ull;
	jobs[0].gzip_bytes = 123;
	snprintf(jobs[0].sha256, sizeof(jobs[0].sha256), "%064d", 0);
	snprintf(jobs[0].md5, sizeof(jobs[0].md5), "1B2M2Y8AsgTpgAmY7PhCfg==");
	jobs[1].name = "files";
	jobs[1].state = JOB_FAILED;
	snprintf(jobs[1].error, sizeof(jobs[1].error), "collection 'files' does not exist");
	run->jobs = jobs;
	run->n_jobs = 2;
}

static bson_t *parse(const char *json)
{
	bson_error_t error;
	bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &error);

	ck_assert_msg(doc != NULL, "manifest is not JSON: %s", error.message);
	return doc;
}

START_TEST(initial_manifest_is_incomplete)
{
	struct backup_run run;
	struct mab_config cfg;
	struct collection_job jobs[2];
	bson_iter_t it;

	fake_run(&run, &cfg, jobs);
	run.n_ok = 2;
	char *json = manifest_encode(&run, false);
	bson_t *doc = parse(json);
	ck_assert(bson_iter_init_find(&it, doc, "complete") && !bson_iter_bool(&it));
	ck_assert(bson_iter_init_find(&it, doc, "finished") && BSON_ITER_HOLDS_NULL(&it));
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.0.result", &it));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "pending");
	ck_assert(bson_iter_init(&it, doc) &&
		  !bson_iter_find_descendant(&it, "collections.0.documents", &it));
	bson_destroy(doc);
	bson_free(json);
	config_free(&cfg);
}
END_TEST

START_TEST(final_manifest_records_results)
{
	struct backup_run run;
	struct mab_config cfg;
	struct collection_job jobs[2];
	bson_iter_t it;

	fake_run(&run, &cfg, jobs);
	run.n_ok = 1;
	run.n_failed = 1;
	char *json = manifest_encode(&run, true);
	bson_t *doc = parse(json);

	ck_assert(bson_iter_init_find(&it, doc, "complete") && !bson_iter_bool(&it));
	ck_assert(bson_iter_init_find(&it, doc, "database"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "tralivali");
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "databases.0", &it));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "tralivali");
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.1.database", &it));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "tralivali");
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.0.type", &it));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "collection");
	ck_assert(bson_iter_init_find(&it, doc, "started"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "2026-11-26T03:00:07Z");
	ck_assert(bson_iter_init_find(&it, doc, "finished"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "2026-11-26T03:01:47Z");
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.0.documents", &it));
	ck_assert_int_eq(bson_iter_as_int64(&it), 300000);
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.0.bson_bytes", &it));
	ck_assert_int_eq(bson_iter_as_int64(&it), 5000000000ll);
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.1.result", &it));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "failed");
	ck_assert(bson_iter_init(&it, doc) &&
		  bson_iter_find_descendant(&it, "collections.1.error", &it));
	ck_assert(strstr(bson_iter_utf8(&it, NULL), "does not exist") != NULL);
	bson_destroy(doc);
	bson_free(json);

	jobs[1].state = JOB_DONE;
	run.n_ok = 2;
	run.n_failed = 0;
	json = manifest_encode(&run, true);
	doc = parse(json);
	ck_assert(bson_iter_init_find(&it, doc, "complete") && bson_iter_bool(&it));
	bson_destroy(doc);
	bson_free(json);
	config_free(&cfg);
}
END_TEST

Suite *manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("manifest");

	tcase_add_test(tc, initial_manifest_is_incomplete);
	tcase_add_test(tc, final_manifest_records_results);
	suite_add_tcase(s, tc);
	return s;
}
