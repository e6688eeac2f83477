//! A Hasura-shaped GraphQL server over a real users table (being written).
