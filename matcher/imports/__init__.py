"""Reading uploaded outcome / need lists (xlsx, csv) into canonical rows, and import templates."""
