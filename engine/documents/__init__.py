"""Loan contracts: templates, amounts and schedules, PDF conversion, electronic seals, verification."""
