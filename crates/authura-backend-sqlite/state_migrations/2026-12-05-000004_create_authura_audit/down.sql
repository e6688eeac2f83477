DROP TABLE authura_audit;
