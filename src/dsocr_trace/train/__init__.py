"""Training-step analysis: trace -> costs -> memory and predictions for one fine-tuning step."""
