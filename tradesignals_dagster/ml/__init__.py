"""ML models on the Parquet datasets: features, trainers, evaluation, versioned artifacts."""
