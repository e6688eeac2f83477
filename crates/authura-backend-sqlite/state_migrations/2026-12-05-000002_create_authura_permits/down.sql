DROP TABLE authura_permits;
DROP TABLE authura_role_groups;
