DROP TABLE authura_password_history;
DROP TABLE authura_account_state;
