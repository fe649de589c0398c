/* check_paths.c - blob_path rendering, escaping and derived names. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "path_template.h"
#include "unit_suites.h"

/* 2026-11-26 03:00:07 UTC */
#define RUN_START ((time_t)1795662007)

START_TEST(default_layout)
{
	char out[BLOB_NAME_MAX], meta[BLOB_NAME_MAX], folder[BLOB_NAME_MAX];

	ck_assert_int_eq(path_template_render("backups/{date}/tralivali_{collection}.bson.gz", "tralivali", "users", RUN_START, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "backups/2026-11-26/tralivali_users.bson.gz");
	ck_assert_int_eq(path_metadata_name(out, meta, sizeof(meta)), 0);
	ck_assert_str_eq(meta, "backups/2026-11-26/tralivali_users.metadata.json.gz");
	ck_assert_int_eq(path_set_folder(out, folder, sizeof(folder)), 0);
	ck_assert_str_eq(folder, "backups/2026-11-26/");
}
END_TEST

START_TEST(time_placeholder)
{
	char out[BLOB_NAME_MAX];

	ck_assert_int_eq(path_template_render("b/{date}T{time}/{collection}.bson.gz", "tralivali", "c",
					      RUN_START, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "b/2026-11-26T030007/c.bson.gz");
}
END_TEST

START_TEST(collection_names_are_escaped)
{
	char out[BLOB_NAME_MAX];

	ck_assert_int_eq(path_template_render("b/{date}/t_{collection}.bson.gz", "tralivali", "a/b c%d\xc3\xa9", RUN_START, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "b/2026-11-26/t_a%2Fb%20c%25d%C3%A9.bson.gz");
	ck_assert_int_eq(path_escape_collection("ok.name-1_x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "ok.name-1_x");
}
END_TEST

START_TEST(too_long_is_an_error)
{
	char out[32];

	ck_assert_int_eq(path_template_render("backups/{date}/tralivali_{collection}.bson.gz", "tralivali", "users", RUN_START, out, sizeof(out)), -1);
}
END_TEST

START_TEST(template_checks)
{
	char err[256];

	ck_assert_int_eq(path_template_check("backups/{date}/tralivali_{collection}.bson.gz",
					     err, sizeof(err)), 0);
	ck_assert_int_eq(path_template_check("{date}/{collection}.bson.gz", err, sizeof(err)), 0);
	ck_assert_int_eq(path_template_check("/abs/{date}/{collection}.bson.gz", err,
					     sizeof(err)), -1);
	ck_assert_int_eq(path_template_check("a//{date}/{collection}.bson.gz", err,
					     sizeof(err)), -1);
	ck_assert_int_eq(path_template_check("a/{date}/{collection}{collection}.bson.gz",
					     err, sizeof(err)), -1);
	ck_assert_int_eq(path_template_check("a/{date}/./{collection}.bson.gz", err,
					     sizeof(err)), -1);
	ck_assert_int_eq(path_template_check("", err, sizeof(err)), -1);
	ck_assert_int_eq(path_template_check("b/{date}/{database}_{collection}.bson.gz", err,
					     sizeof(err)), 0);
	ck_assert_int_eq(path_template_check("b/{database}/{date}/{collection}.bson.gz", err,
					     sizeof(err)), -1);
	ck_assert_int_eq(path_template_check("b/{date}/{database}{database}_{collection}.bson.gz",
					     err, sizeof(err)), -1);
}
END_TEST

START_TEST(database_placeholder)
{
	char out[BLOB_NAME_MAX];

	ck_assert_int_eq(path_template_render("backups/{date}/{database}_{collection}.bson.gz",
					      "app", "users", RUN_START, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "backups/2026-11-26/app_users.bson.gz");
	ck_assert_int_eq(path_template_render("b/{date}/{database}_{collection}.bson.gz",
					      "d-1", "$admin.system.users", RUN_START, out,
					      sizeof(out)), 0);
	ck_assert_str_eq(out, "b/2026-11-26/d-1_%24admin.system.users.bson.gz");
}
END_TEST

START_TEST(metadata_name_needs_bson_gz)
{
	char out[BLOB_NAME_MAX];

	ck_assert_int_eq(path_metadata_name("a/b.json", out, sizeof(out)), -1);
	ck_assert_int_eq(path_set_folder("nofolder.bson.gz", out, sizeof(out)), -1);
}
END_TEST

Suite *paths_suite(void)
{
	Suite *s = suite_create("paths");
	TCase *tc = tcase_create("paths");

	tcase_add_test(tc, default_layout);
	tcase_add_test(tc, database_placeholder);
	tcase_add_test(tc, time_placeholder);
	tcase_add_test(tc, collection_names_are_escaped);
	tcase_add_test(tc, too_long_is_an_error);
	tcase_add_test(tc, template_checks);
	tcase_add_test(tc, metadata_name_needs_bson_gz);
	suite_add_tcase(s, tc);
	return s;
}
