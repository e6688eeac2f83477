DROP TABLE authura_sessions;
