//! RabbitMQ topology, task publishing with confirms and consuming with manual acks.
