DROP TABLE authura_oauth_links;
